package tlsconf_test

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/internal/tlsconf"
	"github.com/osprey-health/osprey/channels/internal/tlsconf/tlsconftest"
	"github.com/osprey-health/osprey/engine/spec"
)

func TestServerConfig(t *testing.T) {
	pki := tlsconftest.New(t, "c")
	tests := []struct {
		name    string
		srv     tlsconf.Server
		auth    tls.ClientAuthType
		version uint16
	}{
		{"no client CA", tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}, tls.NoClientCert, tls.VersionTLS12},
		{"client CA requires a certificate", tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}, tls.RequireAndVerifyClientCert, tls.VersionTLS12},
		{"optional client certificate", tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile, OptionalClientCert: true}, tls.VerifyClientCertIfGiven, tls.VersionTLS12},
		{"TLS 1.3", tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, MinVersion: "1.3"}, tls.NoClientCert, tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.srv.Config()
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			if cfg.ClientAuth != tc.auth || cfg.MinVersion != tc.version {
				t.Errorf("ClientAuth %v, MinVersion %x; want %v, %x", cfg.ClientAuth, cfg.MinVersion, tc.auth, tc.version)
			}
			if (cfg.ClientCAs != nil) != (tc.srv.ClientCAFile != "") {
				t.Errorf("ClientCAs set = %v with client_ca_file %q", cfg.ClientCAs != nil, tc.srv.ClientCAFile)
			}
			c, err := cfg.GetCertificate(nil)
			if err != nil || c == nil || string(c.Certificate[0]) != string(pki.Server.Certificate[0]) {
				t.Errorf("GetCertificate = %v, %v; want the server certificate", c, err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	pki := tlsconftest.New(t, "c")
	notPEM := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		config func() (*tls.Config, error)
		want   string
	}{
		{"server without key", (&tlsconf.Server{CertFile: pki.ServerCert}).Config, "key_file"},
		{"server with a bad version", (&tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, MinVersion: "1.1"}).Config, "min_version"},
		{"server certificate missing", (&tlsconf.Server{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}).Config, "certificate"},
		{"server CA file holds no PEM", (&tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: notPEM}).Config, "no PEM certificate"},
		{"client with half a key pair", (&tlsconf.Client{CertFile: pki.ClientCert}).Config, "both cert_file and key_file"},
		{"client with a bad version", (&tlsconf.Client{MinVersion: "1.0"}).Config, "min_version"},
		{"client CA file missing", (&tlsconf.Client{CAFile: "/nonexistent/ca.pem"}).Config, "CA file"},
		{"client key pair that does not match", (&tlsconf.Client{CertFile: pki.ClientCert, KeyFile: pki.ServerKey}).Config, "client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.config()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Config = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestHandshake runs a listener from Listen against clients from Client.Config, so that the
// two halves are known to agree.
func TestHandshake(t *testing.T) {
	pki := tlsconftest.New(t, "osprey")
	other := tlsconftest.New(t, "stranger")
	ln, err := tlsconf.Listen("127.0.0.1:0", &tlsconf.Server{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("ok"))
			}()
		}
	}()
	tests := []struct {
		name   string
		client tlsconf.Client
		ok     bool
	}{
		{"CA and client certificate", tlsconf.Client{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, true},
		{"no client certificate", tlsconf.Client{CAFile: pki.CAFile}, false},
		{"client certificate from another CA", tlsconf.Client{CAFile: pki.CAFile, CertFile: other.ClientCert, KeyFile: other.ClientKey}, false},
		{"server not trusted", tlsconf.Client{CAFile: other.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.client.Config()
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			if err == nil {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				// TLS 1.3 reports a refused client certificate at the first read.
				_, err = io.ReadAll(c)
			}
			if tc.ok != (err == nil) {
				t.Errorf("connection error = %v, want success %v", err, tc.ok)
			}
		})
	}
}

func TestServerCertificateReload(t *testing.T) {
	old, renewed := tlsconftest.New(t, "a"), tlsconftest.New(t, "b")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	old.InstallServer(t, certFile, keyFile, time.Now().Add(-time.Hour))
	cfg, err := (&tlsconf.Server{CertFile: certFile, KeyFile: keyFile}).Config()
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		c, err := cfg.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(c.Certificate[0])
	}
	if served() != string(old.Server.Certificate[0]) {
		t.Fatal("not serving the installed certificate")
	}
	renewed.InstallServer(t, certFile, keyFile, time.Now())
	if served() != string(renewed.Server.Certificate[0]) {
		t.Error("still serving the old certificate after the files were renewed")
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if served() != string(renewed.Server.Certificate[0]) {
		t.Error("a key file gone during a renewal dropped the certificate being served")
	}
}

func TestSpecs(t *testing.T) {
	mllpLike := tlsconf.ServerSpec{Name: "tls", Desc: "TLS.", ClientCA: "CAs.", RequireCert: "Refuse clients without one."}
	serverTests := []struct {
		name string
		spec tlsconf.ServerSpec
		yaml string
		want *tlsconf.Server
	}{
		{"absent", tlsconf.HTTPS(), "{}\n", nil},
		{"HTTPS with a client CA requires certificates", tlsconf.HTTPS(), "tls: {cert_file: c, key_file: k, client_ca_file: ca}\n",
			&tlsconf.Server{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", MinVersion: "1.2"}},
		{"require_client_cert false makes them optional", mllpLike, "tls: {cert_file: c, key_file: k, client_ca_file: ca, min_version: \"1.3\"}\n",
			&tlsconf.Server{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", OptionalClientCert: true, MinVersion: "1.3"}},
		{"require_client_cert true", mllpLike, "tls: {cert_file: c, key_file: k, client_ca_file: ca, require_client_cert: true}\n",
			&tlsconf.Server{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", MinVersion: "1.2"}},
	}
	for _, tc := range serverTests {
		t.Run("server/"+tc.name, func(t *testing.T) {
			p, lints := spec.ParseYAML(tc.yaml, []spec.Field{tc.spec.Field()})
			if len(lints) > 0 {
				t.Fatalf("lints: %v", lints)
			}
			got := tc.spec.Parse(p)
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}

	full := tlsconf.ClientSpec{Name: "tls", Desc: "TLS.", Peer: "receiver", ServerName: "Name.", MinVersion: true}
	short := tlsconf.ClientSpec{Name: "pacs_tls", Desc: "TLS.", Peer: "server"}
	p, lints := spec.ParseYAML("tls: {ca_file: ca, cert_file: c, key_file: k, server_name: ris, insecure_skip_verify: true, min_version: \"1.3\"}\n", []spec.Field{full.Field()})
	if len(lints) > 0 {
		t.Fatalf("lints: %v", lints)
	}
	want := tlsconf.Client{CAFile: "ca", CertFile: "c", KeyFile: "k", ServerName: "ris", InsecureSkipVerify: true, MinVersion: "1.3"}
	if got := full.Parse(p); got == nil || *got != want {
		t.Errorf("Parse = %+v, want %+v", got, want)
	}
	if _, lints := spec.ParseYAML("pacs_tls: {server_name: x}\n", []spec.Field{short.Field()}); len(lints) == 0 {
		t.Error("server_name accepted by a spec that does not declare it")
	}
	p, _ = spec.ParseYAML("pacs_tls: {ca_file: ca}\n", []spec.Field{short.Field()})
	if got := short.Parse(p); got == nil || *got != (tlsconf.Client{CAFile: "ca"}) {
		t.Errorf("Parse = %+v, want only the CA file", got)
	}
	if d := short.Field().Fields[0].Description; !strings.Contains(d, "server's certificate") {
		t.Errorf("ca_file reads %q, want it to name the server", d)
	}
}
