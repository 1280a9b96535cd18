package dicomweb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// ServerTLS configures TLS for a listening source from PEM files.
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
		return nil, errors.New("dicomweb: tls needs both cert_file and key_file")
	}
	kp, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: load tls certificate: %w", err)
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

// ClientTLS configures TLS for connections to a PACS.
type ClientTLS struct {
	CAFile             string // CAs that sign the server's certificate; system roots when empty
	CertFile, KeyFile  string // a client certificate, for servers that ask for one
	InsecureSkipVerify bool   // accept any server certificate; never in production
}

// Config builds the client's tls.Config.
func (t *ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
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
			return nil, fmt.Errorf("dicomweb: load tls client certificate: %w", err)
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
		return nil, fmt.Errorf("dicomweb: read ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("dicomweb: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// bind listens on addr, with TLS when t is set: what both HTTP sources do in Listen.
func bind(addr string, t *ServerTLS) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: listen %s: %w", addr, err)
	}
	if t != nil {
		tc, err := t.Config()
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
	}
	return ln, nil
}
