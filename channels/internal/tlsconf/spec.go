package tlsconf

import "github.com/osprey-health/osprey/engine/spec"

// Field names inside a tls object.
const (
	FieldCertFile     = "cert_file"
	FieldKeyFile      = "key_file"
	FieldClientCAFile = "client_ca_file"
	FieldRequireCert  = "require_client_cert"
	FieldMinVersion   = "min_version"
	FieldCAFile       = "ca_file"
	FieldServerName   = "server_name"
	FieldInsecure     = "insecure_skip_verify"
)

// ServerSpec declares a listener's tls object and reads it back. The wording differs
// between connectors (HTTPS or TLS over TCP; whether a CA alone requires client
// certificates), the fields and their meaning do not.
type ServerSpec struct {
	Name string // the object's key, "tls"
	Desc string // what setting the object switches on
	// ClientCA describes client_ca_file.
	ClientCA string
	// RequireCert, when set, declares require_client_cert with this description: clients
	// without a certificate are then let in unless it is true. Without it, client_ca_file
	// alone requires every client to present a certificate.
	RequireCert string
}

// HTTPS is the tls object of an HTTP source: HTTPS, and client certificates required as
// soon as client_ca_file is set.
func HTTPS() ServerSpec {
	return ServerSpec{
		Name:     "tls",
		Desc:     "Serve HTTPS instead of HTTP. Omit for plain HTTP.",
		ClientCA: "PEM file with the CAs client certificates must chain to; setting it requires every client to present one.",
	}
}

// Field is the spec declaration of the object.
func (s ServerSpec) Field() spec.Field {
	fields := []spec.Field{
		spec.NewString(FieldCertFile, "PEM file with the server certificate chain."),
		spec.NewString(FieldKeyFile, "PEM file with the server private key."),
		spec.NewString(FieldClientCAFile, s.ClientCA).AsOptional(),
	}
	if s.RequireCert != "" {
		fields = append(fields, spec.NewBool(FieldRequireCert, s.RequireCert).WithDefault(false))
	}
	fields = append(fields, minVersionField())
	return spec.NewObject(s.Name, s.Desc, fields...).AsOptional()
}

// Parse reads the object from p, the parsed component; nil when it is absent.
func (s ServerSpec) Parse(p *spec.Parsed) *Server {
	if !p.Has(s.Name) {
		return nil
	}
	t := p.Object(s.Name)
	srv := &Server{CertFile: t.String(FieldCertFile), KeyFile: t.String(FieldKeyFile), ClientCAFile: t.String(FieldClientCAFile),
		MinVersion: t.String(FieldMinVersion)}
	if s.RequireCert != "" {
		srv.OptionalClientCert = !t.Bool(FieldRequireCert)
	}
	return srv
}

// ClientSpec declares a tls object for outgoing connections and reads it back.
type ClientSpec struct {
	Name string // the object's key: "tls", "pacs_tls"
	Desc string // when the object applies
	Peer string // what the far end is called in the field descriptions: "server", "receiver"
	// ServerName, when set, declares server_name with this description.
	ServerName         string
	AdvancedServerName bool // list server_name among the advanced fields
	MinVersion         bool // declare min_version
}

// Field is the spec declaration of the object.
func (c ClientSpec) Field() spec.Field {
	fields := []spec.Field{
		spec.NewString(FieldCAFile, "PEM file with the CAs that sign the "+c.Peer+"'s certificate; the system roots when omitted.").AsOptional(),
		spec.NewString(FieldCertFile, "PEM file with a client certificate, for "+c.Peer+"s that require one.").AsOptional(),
		spec.NewString(FieldKeyFile, "PEM file with the client certificate's private key.").AsOptional(),
	}
	if c.ServerName != "" {
		f := spec.NewString(FieldServerName, c.ServerName).AsOptional()
		if c.AdvancedServerName {
			f = f.AsAdvanced()
		}
		fields = append(fields, f)
	}
	fields = append(fields, spec.NewBool(FieldInsecure, "Accept any "+c.Peer+" certificate. Never in production.").WithDefault(false).AsAdvanced())
	if c.MinVersion {
		fields = append(fields, minVersionField())
	}
	return spec.NewObject(c.Name, c.Desc, fields...).AsOptional()
}

// Parse reads the object from p, the parsed component; nil when it is absent.
func (c ClientSpec) Parse(p *spec.Parsed) *Client {
	if !p.Has(c.Name) {
		return nil
	}
	t := p.Object(c.Name)
	cl := &Client{CAFile: t.String(FieldCAFile), CertFile: t.String(FieldCertFile), KeyFile: t.String(FieldKeyFile),
		InsecureSkipVerify: t.Bool(FieldInsecure)}
	if c.ServerName != "" {
		cl.ServerName = t.String(FieldServerName)
	}
	if c.MinVersion {
		cl.MinVersion = t.String(FieldMinVersion)
	}
	return cl
}

func minVersionField() spec.Field {
	return spec.NewString(FieldMinVersion, "Lowest TLS version accepted.").WithDefault("1.2").WithEnum("1.2", "1.3")
}
