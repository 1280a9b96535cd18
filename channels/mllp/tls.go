package mllp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
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
	kp, err := loadKeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mllp: load tls certificate: %w", err)
	}
	cfg := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get(), nil },
		MinVersion:     v,
	}
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
		kp, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mllp: load tls client certificate: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get(), nil }
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

// keyPair is a certificate and key read from files and read again when either file changes,
// so a renewed certificate is used for new connections without restarting the channel.
// The files are checked at every handshake: two stat calls, nothing beside a handshake.
type keyPair struct {
	certFile, keyFile string

	mu                sync.Mutex
	cert              *tls.Certificate
	certStat, keyStat fileStamp
}

// fileStamp is what tells a changed file from the one loaded.
type fileStamp struct {
	mod  int64 // modification time, Unix nanoseconds
	size int64
}

func stamp(file string) (fileStamp, error) {
	st, err := os.Stat(file)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st.ModTime().UnixNano(), st.Size()}, nil
}

func loadKeyPair(certFile, keyFile string) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// load reads both files; the caller holds mu, or k is not shared yet.
func (k *keyPair) load() error {
	cs, err := stamp(k.certFile)
	if err != nil {
		return err
	}
	ks, err := stamp(k.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return err
	}
	k.cert, k.certStat, k.keyStat = &cert, cs, ks
	return nil
}

// get returns the current certificate, reloading it if the files changed. A reload that
// fails (files half written during a renewal, a key that does not match yet) keeps serving
// the previous certificate and is tried again at the next handshake.
func (k *keyPair) get() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, err1 := stamp(k.certFile)
	ks, err2 := stamp(k.keyFile)
	if err1 == nil && err2 == nil && (cs != k.certStat || ks != k.keyStat) {
		k.load()
	}
	return k.cert
}
