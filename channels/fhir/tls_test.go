package fhir_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/fhir"
)

// selfSigned writes a certificate for 127.0.0.1, good for server and client use, and its
// key, returning the file names and a pool holding the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "osprey-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func TestDestinationTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	tests := []struct {
		name string
		tls  *fhir.ClientTLS
		ok   bool
	}{
		{"private CA and client certificate", &fhir.ClientTLS{CAFile: certFile, CertFile: certFile, KeyFile: keyFile}, true},
		{"system roots do not know the CA", nil, false},
		{"no client certificate", &fhir.ClientTLS{CAFile: certFile}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL, TLS: tc.tls, Timeout: 10 * time.Second})
			_, err := d.Send(t.Context(), fhirMessage(patientJSON, nil))
			if tc.ok && err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !tc.ok {
				var re *fhir.RetryError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want a retryable TLS failure", err)
				}
			}
		})
	}
}

func TestSourceTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	sk := &sink{}
	base := runSource(t, fhir.SourceConfig{TLS: &fhir.ServerTLS{CertFile: certFile, KeyFile: keyFile}}, sk)
	base = strings.Replace(base, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Post(base+"/Patient", "application/fhir+json", strings.NewReader(patientJSON))
	if err != nil {
		t.Fatalf("POST over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || len(sk.messages()) != 1 {
		t.Fatalf("status %d, %d messages", resp.StatusCode, len(sk.messages()))
	}
	if _, err := http.Post(strings.Replace(base, "https://", "http://", 1)+"/Patient", "application/fhir+json", strings.NewReader(patientJSON)); err == nil {
		// A plain-HTTP request to a TLS listener gets a 400 from net/http, never a message.
		if len(sk.messages()) != 1 {
			t.Error("a plain HTTP request reached the sink")
		}
	}
}
