package fhir

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// ServerTLS configures HTTPS for the Source from PEM files.
type ServerTLS struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the server verify client certificates against these CAs
	// and refuse clients without one.
	ClientCAFile string
	MinVersion   string // "1.2" (default) or "1.3"
}

// Config loads the files and returns the server's tls.Config.
func (t *ServerTLS) Config() (*tls.Config, error) {
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("fhir: tls needs both cert_file and key_file")
	}
	kp, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("fhir: load tls certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tlsVersion(t.MinVersion)}
	if t.ClientCAFile != "" {
		pool, err := loadPool(t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS configures TLS for connections to a FHIR server and its token endpoint.
type ClientTLS struct {
	CAFile             string // CAs that sign the server's certificate; system roots when empty
	CertFile, KeyFile  string // a client certificate, for servers that ask for one
	ServerName         string // name to verify when it differs from the URL's host
	InsecureSkipVerify bool   // accept any server certificate; never in production
	MinVersion         string // "1.2" (default) or "1.3"
}

// Config builds the client's tls.Config.
func (t *ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tlsVersion(t.MinVersion), ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		kp, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("fhir: load tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

func tlsVersion(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("fhir: read ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("fhir: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// bind listens on addr, with TLS when t is set.
func bind(addr string, t *ServerTLS) (net.Listener, error) {
	var tc *tls.Config
	if t != nil {
		var err error
		if tc, err = t.Config(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fhir: listen %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return ln, nil
}
