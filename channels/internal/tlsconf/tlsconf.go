// Package tlsconf is the one place the connectors' TLS settings live: the server and client
// settings read from PEM files, the *tls.Config built from them, the listener that serves
// with them, and the spec fields that declare them in a channel file. source.mllp,
// source.fhir, source.dicomweb and their destinations share it so that a tls object means
// the same in every channel file and a fix to certificate handling lands everywhere at once.
//
// Certificates are read again when their files change (see [Server.Config]), so a renewed
// certificate is used without restarting the channel.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// Server configures TLS for a listener from PEM files.
type Server struct {
	CertFile, KeyFile string // the server's certificate chain and private key
	// ClientCAFile, when set, makes the server verify client certificates against these CAs
	// and refuse clients without one, unless OptionalClientCert.
	ClientCAFile string
	// OptionalClientCert, with ClientCAFile, also lets in clients that present no
	// certificate; one that is presented must still verify.
	OptionalClientCert bool
	MinVersion         string // "1.2" (the default when empty) or "1.3"
}

// Validate checks what can be checked without reading the files.
func (s *Server) Validate() error {
	if s.CertFile == "" || s.KeyFile == "" {
		return errors.New("tls needs both cert_file and key_file")
	}
	_, err := Version(s.MinVersion)
	return err
}

// Config loads the files and returns the server's tls.Config. The certificate is served
// through GetCertificate and read again at a handshake after its files changed.
func (s *Server) Config() (*tls.Config, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	v, _ := Version(s.MinVersion)
	kp, err := loadKeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate: %w", err)
	}
	cfg := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get(), nil },
		MinVersion:     v,
	}
	if s.ClientCAFile != "" {
		pool, err := loadPool(s.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		if s.OptionalClientCert {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

// Client configures TLS for outgoing connections from PEM files.
type Client struct {
	// CAFile holds the CAs that sign the server's certificate; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are a client certificate, for servers that ask for one.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate (default: the host
	// of the address or URL).
	ServerName string
	// InsecureSkipVerify accepts any server certificate. Never in production.
	InsecureSkipVerify bool
	MinVersion         string // "1.2" (the default when empty) or "1.3"
}

// Validate checks what can be checked without reading the files.
func (c *Client) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("a tls client certificate needs both cert_file and key_file")
	}
	_, err := Version(c.MinVersion)
	return err
}

// Config loads the files and returns the client's tls.Config. A client certificate is
// read again at a handshake after its files changed.
func (c *Client) Config() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	v, _ := Version(c.MinVersion)
	cfg := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: v}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		kp, err := loadKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls client certificate: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get(), nil }
	}
	return cfg, nil
}

// Version maps a min_version setting to its crypto/tls constant.
func Version(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls min_version %q: want 1.2 or 1.3", s)
}

// Listen listens on TCP addr, with TLS when s is set. The certificate files are read
// first, so a missing certificate never leaves a socket bound behind it.
func Listen(addr string, s *Server) (net.Listener, error) {
	var tc *tls.Config
	if s != nil {
		var err error
		if tc, err = s.Config(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return ln, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read tls CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
