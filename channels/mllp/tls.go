package mllp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerTLS configures TLS for a Source from PEM files.
type ServerTLS struct {
	CertFile, KeyFile string // the server's certificate chain and private key
	// ClientCAFile, when set, makes the server ask for a client certificate and verify any
	// it is given against these CAs.
	ClientCAFile string
	// RequireClientCert refuses clients without a valid certificate; it needs ClientCAFile.
	RequireClientCert bool
	// MinVersion is "1.2" (the default when empty) or "1.3".
	MinVersion string
}

func (t *ServerTLS) validate() error {
	if t.CertFile == "" || t.KeyFile == "" {
		return errors.New("tls needs both cert_file and key_file")
	}
	if t.RequireClientCert && t.ClientCAFile == "" {
		return errors.New("tls.require_client_cert needs tls.client_ca_file to verify client certificates against")
	}
	_, err := tlsVersion(t.MinVersion)
	return err
}

// Config loads the files and returns the server's tls.Config.
func (t *ServerTLS) Config() (*tls.Config, error) {
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("mllp: %w", err)
	}
	v, _ := tlsVersion(t.MinVersion)
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mllp: load tls certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: v}
	if t.ClientCAFile != "" {
		pool, err := loadPool(t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if t.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// ClientTLS configures TLS for a Destination or Client from PEM files.
type ClientTLS struct {
	// CAFile holds the CAs that sign the server's certificate; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate for servers that require one.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate (default: the host
	// of the address).
	ServerName string
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool
	// MinVersion is "1.2" (the default when empty) or "1.3".
	MinVersion string
}

// Config loads the files and returns the client's tls.Config.
func (t *ClientTLS) Config() (*tls.Config, error) {
	v, err := tlsVersion(t.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("mllp: %w", err)
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: v}
	if t.CAFile != "" {
		if cfg.RootCAs, err = loadPool(t.CAFile); err != nil {
			return nil, err
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mllp: load tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.CertFile != "" || t.KeyFile != "":
		return nil, errors.New("mllp: a tls client certificate needs both cert_file and key_file")
	}
	return cfg, nil
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls min_version %q: want 1.2 or 1.3", s)
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("mllp: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mllp: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
