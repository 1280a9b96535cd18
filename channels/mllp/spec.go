package mllp

import (
	"errors"
	"math"
	"time"

	"github.com/osprey-health/osprey/channels/internal/tlsconf"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
)

// Field names, shared by the specs and the constructors that read them.
const (
	fAddress        = "address"
	fTLS            = "tls"
	fMaxMessageSize = "max_message_size"
	fIdleTimeout    = "idle_timeout"
	fMaxConnections = "max_connections"
	fAckMode        = "ack_mode"
	fAckTimeout     = "ack_timeout"
	fConnectTimeout = "connect_timeout"
	fConnections    = "connections"
	fKeepAlive      = "keepalive"
	fBackoff        = "reconnect_backoff"
	fMaxBackoff     = "max_backoff"
)

func init() {
	engine.RegisterSource(SourceSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Source, error) {
		return NewSource(sourceConfig(conf), res)
	})
	engine.RegisterDestination(DestinationSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Destination, error) {
		return NewDestination(destinationConfig(conf), res)
	})
}

// The tls objects of source.mllp and destination.mllp.
var (
	serverTLS = tlsconf.ServerSpec{
		Name:        fTLS,
		Desc:        "Serve TLS instead of plain TCP. Omit for plain TCP.",
		ClientCA:    "PEM file with the CAs client certificates must chain to; setting it turns on client certificate verification.",
		RequireCert: "Refuse clients that present no valid certificate (needs client_ca_file).",
	}
	clientTLS = tlsconf.ClientSpec{
		Name:       fTLS,
		Desc:       "Connect with TLS. Omit for plain TCP.",
		Peer:       "receiver",
		ServerName: "Name to verify in the receiver's certificate, when it differs from the address's host.",
		MinVersion: true,
	}
)

func nonNegative(v any) error {
	switch x := v.(type) {
	case int:
		if x < 0 {
			return errors.New("must not be negative")
		}
	case int64:
		if x < 0 {
			return errors.New("must not be negative")
		}
	case time.Duration:
		if x < 0 {
			return errors.New("must not be negative")
		}
	}
	return nil
}

func positive(v any) error {
	switch x := v.(type) {
	case int:
		if x < 1 {
			return errors.New("must be at least 1")
		}
	case time.Duration:
		if x <= 0 {
			return errors.New("must be longer than 0s")
		}
	}
	return nil
}

func sizeLimit(v any) error {
	if x, ok := v.(int64); ok && (x < 1 || x > math.MaxInt32) {
		return errors.New("must be between 1 byte and 2GiB")
	}
	return nil
}

// SourceSpec declares the configuration of source.mllp.
func SourceSpec() spec.Component {
	return spec.Component{
		Name:    "mllp",
		Summary: "Receive HL7v2 messages over MLLP (TCP or TLS) and acknowledge each once it is stored.",
		Description: `Listens for HL7v2 senders (RIS, EHR, modality worklist brokers) speaking MLLP. Each
message is handed to the channel and acknowledged only after the engine has committed it,
so an ` + "`AA`" + ` always means the message is on disk.

| engine verdict | original mode | enhanced mode |
|---|---|---|
| accepted or duplicate | AA | CA |
| rejected (unusable content, kept for the analyst) | AE + ERR | CE + ERR |
| not stored (engine stopping, storage down): retry | AR + ERR | CR + ERR |
| frame larger than ` + "`max_message_size`" + ` (connection closed) | AR + ERR | CR + ERR |

Empty frames are treated as keep-alives and not answered. Bytes outside frames are skipped
and logged (count only, never content). A frame whose trailing carriage return is missing is
accepted.`,
		Fields: []spec.Field{
			spec.NewString(fAddress, "Host and port to listen on. Use 0.0.0.0:2575 to accept connections from the network.").
				WithDefault(DefaultAddress).WithExamples("0.0.0.0:2575", "10.1.2.3:6661"),
			serverTLS.Field(),
			spec.NewBytes(fMaxMessageSize, "Largest message accepted. A larger one is answered AR and its connection closed.").
				WithDefault("16MiB").WithLint(sizeLimit).AsAdvanced(),
			spec.NewDuration(fIdleTimeout, "Close a connection that has sent nothing for this long; 0 keeps idle connections forever.").
				WithDefault("5m").WithLint(nonNegative),
			spec.NewInt(fMaxConnections, "Most connections served at once; more are closed as they arrive. 0 is unlimited.").
				WithDefault(0).WithLint(nonNegative).AsAdvanced(),
			spec.NewString(fAckMode, "Acknowledgment codes: original (AA/AE/AR), enhanced (CA/CE/CR), or auto, which follows the message's MSH-15/MSH-16.").
				WithDefault(string(AckAuto)).WithEnum(string(AckOriginal), string(AckEnhanced), string(AckAuto)),
		},
		Examples: []spec.Example{
			{
				Title:   "Plain TCP from the RIS",
				Summary: "Listen on every interface on the standard port.",
				YAML:    "address: 0.0.0.0:2575\n",
			},
			{
				Title:   "TLS with client certificates",
				Summary: "Only senders with a certificate from the hospital CA may connect.",
				YAML: `address: 0.0.0.0:2576
tls:
  cert_file: /etc/osprey/tls/server.crt
  key_file: /etc/osprey/tls/server.key
  client_ca_file: /etc/osprey/tls/hospital-ca.crt
  require_client_cert: true
idle_timeout: 10m
`,
			},
		},
	}
}

// DestinationSpec declares the configuration of destination.mllp.
func DestinationSpec() spec.Component {
	return spec.Component{
		Name:    "mllp",
		Summary: "Send HL7v2 messages to an MLLP receiver and wait for each one's ACK.",
		Description: `Keeps a connection open to the receiver and sends one message at a time on it, waiting
for the ACK whose MSA-2 matches the message's MSH-10. AA or CA confirms delivery; AE, AR, CE
and CR are rejections, recorded with the receiver's text and ERR segments. An ACK for another
control id (a late answer to an earlier message) is logged and ignored.

When no ACK arrives within ` + "`ack_timeout`" + ` the connection is closed before the retry,
so a slow receiver never finds the retried message queued behind the original on the same
socket, and a late ACK can never be mistaken for a later message's. Failed connects are
retried with a doubling backoff from ` + "`reconnect_backoff`" + ` up to ` + "`max_backoff`" + `.`,
		Fields: []spec.Field{
			spec.NewString(fAddress, "Host and port of the receiver.").WithExamples("ris.example.org:2575"),
			spec.NewDuration(fAckTimeout, "How long to wait for the ACK to each message.").WithDefault("30s").WithLint(positive),
			spec.NewDuration(fConnectTimeout, "How long a connection attempt (TCP and TLS handshake) may take.").WithDefault("10s").WithLint(positive),
			spec.NewInt(fConnections, "Connections kept open. Ordered channels send one message at a time and use one; unordered channels may have this many messages in flight.").
				WithDefault(1).WithLint(positive),
			clientTLS.Field(),
			spec.NewDuration(fKeepAlive, "TCP keep-alive probe period, which finds connections a firewall dropped silently; 0 turns probes off.").
				WithDefault("30s").WithLint(nonNegative).AsAdvanced(),
			spec.NewDuration(fBackoff, "Wait after a failed connect, doubled after each further failure.").WithDefault("1s").WithLint(positive).AsAdvanced(),
			spec.NewDuration(fMaxBackoff, "Longest wait between connect attempts.").WithDefault("30s").WithLint(positive).AsAdvanced(),
		},
		Examples: []spec.Example{
			{
				Title:   "Results to the RIS",
				Summary: "One connection, the defaults for everything else.",
				YAML:    "address: ris.example.org:2575\n",
			},
			{
				Title:   "TLS with a client certificate",
				Summary: "The receiver checks Osprey's certificate; a private CA signs the receiver's.",
				YAML: `address: ris.example.org:2576
ack_timeout: 60s
tls:
  ca_file: /etc/osprey/tls/hospital-ca.crt
  cert_file: /etc/osprey/tls/osprey.crt
  key_file: /etc/osprey/tls/osprey.key
`,
			},
		},
	}
}

// sourceConfig maps a parsed source.mllp object to SourceConfig.
func sourceConfig(p *spec.Parsed) SourceConfig {
	cfg := SourceConfig{
		Address:        p.String(fAddress),
		MaxMessageSize: int(p.Bytes(fMaxMessageSize)),
		IdleTimeout:    p.Duration(fIdleTimeout),
		MaxConnections: p.Int(fMaxConnections),
		AckMode:        AckMode(p.String(fAckMode)),
	}
	if t := serverTLS.Parse(p); t != nil {
		cfg.TLS = &ServerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
			RequireClientCert: !t.OptionalClientCert, MinVersion: t.MinVersion}
	}
	return cfg
}

// destinationConfig maps a parsed destination.mllp object to DestinationConfig.
func destinationConfig(p *spec.Parsed) DestinationConfig {
	cfg := DestinationConfig{
		Address:          p.String(fAddress),
		AckTimeout:       p.Duration(fAckTimeout),
		ConnectTimeout:   p.Duration(fConnectTimeout),
		Connections:      p.Int(fConnections),
		KeepAlive:        p.Duration(fKeepAlive),
		ReconnectBackoff: p.Duration(fBackoff),
		MaxBackoff:       p.Duration(fMaxBackoff),
	}
	cfg.TLS = clientTLS.Parse(p)
	return cfg
}
