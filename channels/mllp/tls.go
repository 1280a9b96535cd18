package mllp

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/osprey-health/osprey/channels/internal/tlsconf"
)

// ServerTLS configures TLS for a Source from PEM files. The certificate is read again when
// its files change, so a renewed certificate is used for new connections without
// restarting the channel.
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

// server is t in tlsconf's terms: there a CA alone requires client certificates, here it
// only verifies those given unless RequireClientCert. nil for nil.
func (t *ServerTLS) server() *tlsconf.Server {
	if t == nil {
		return nil
	}
	return &tlsconf.Server{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
		OptionalClientCert: !t.RequireClientCert, MinVersion: t.MinVersion}
}

func (t *ServerTLS) validate() error {
	if err := t.server().Validate(); err != nil {
		return err
	}
	if t.RequireClientCert && t.ClientCAFile == "" {
		return errors.New("tls.require_client_cert needs tls.client_ca_file to verify client certificates against")
	}
	return nil
}

// Config loads the files and returns the server's tls.Config.
func (t *ServerTLS) Config() (*tls.Config, error) {
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("mllp: %w", err)
	}
	cfg, err := t.server().Config()
	if err != nil {
		return nil, fmt.Errorf("mllp: %w", err)
	}
	return cfg, nil
}

// ClientTLS configures TLS for a Destination or Client from PEM files. A client
// certificate is read again when its files change.
type ClientTLS = tlsconf.Client

// tlsVersion checks a min_version setting; NewDestination uses it.
func tlsVersion(s string) (uint16, error) { return tlsconf.Version(s) }
