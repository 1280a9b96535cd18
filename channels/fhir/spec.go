package fhir

import (
	"errors"
	"strings"

	"github.com/osprey-health/osprey/channels/internal/bearer"
	"github.com/osprey-health/osprey/channels/internal/speclint"
	"github.com/osprey-health/osprey/channels/internal/tlsconf"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
)

// Field names, shared by the specs and the constructors that read them.
const (
	fAddress       = "address"
	fBasePath      = "base_path"
	fTokens        = "tokens"
	fTLS           = "tls"
	fMaxBodySize   = "max_body_size"
	fResourceTypes = "resource_types"
	fURL           = "url"
	fAuth          = "auth"
	fToken         = "token"
	fUsername      = "username"
	fPassword      = "password"
	fOAuth2        = "oauth2"
	fTokenURL      = "token_url"
	fClientID      = "client_id"
	fClientSecret  = "client_secret"
	fScopes        = "scopes"
	fParams        = "params"
	fTimeout       = "timeout"
	fConditional   = "conditional"
	fPrefer        = "prefer"
	fHeaders       = "headers"
	fParallelism   = "parallelism"
)

func init() {
	engine.RegisterSource(SourceSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Source, error) {
		return NewSource(sourceConfig(conf), res)
	})
	engine.RegisterDestination(DestinationSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Destination, error) {
		return NewDestination(destinationConfig(conf), res)
	})
}

// clientTLS is destination.fhir's tls object, for the server and its token endpoint.
var clientTLS = tlsconf.ClientSpec{
	Name:               fTLS,
	Desc:               "TLS settings for an https:// server and token endpoint. Omit to use the system roots.",
	Peer:               "server",
	ServerName:         "Name to verify in the server's certificate, when it differs from the URL's host.",
	AdvancedServerName: true,
	MinVersion:         true,
}

func positiveInt(v any) error {
	if n, ok := v.(int); ok && n < 1 {
		return errors.New("must be at least 1")
	}
	return nil
}

func resourceTypes(v any) error {
	list, _ := v.([]string)
	for _, s := range list {
		if s == "" || s[0] < 'A' || s[0] > 'Z' || strings.ContainsAny(s, " /") {
			return errors.New("must be FHIR resource type names such as Patient or Bundle")
		}
	}
	return nil
}

// SourceSpec declares the configuration of source.fhir.
func SourceSpec() spec.Component {
	return spec.Component{
		Name:    "fhir",
		Summary: "Receive FHIR R4 resources, Bundles and Subscription notifications over HTTP; each is answered once stored.",
		Description: `A FHIR R4 endpoint (JSON). Each request becomes one message, validated with the FHIR R4
definitions and answered only after the engine has committed it, so a 2xx always means the
message is on disk.

| request | message | answer |
|---|---|---|
| ` + "`POST {base}`" + ` with a Bundle or any resource | ` + "`application/fhir+json`" + ` | 200 + OperationOutcome |
| ` + "`POST {base}/{type}`" + ` with a resource of that type | ` + "`application/fhir+json`" + ` | 201 + OperationOutcome |
| ` + "`POST {base}/subscription[/{name}]`" + ` with no body (id-only or empty notification) | ` + "`application/vnd.osprey.fhir-notification+json`" + ` | 200 |
| ` + "`POST {base}/subscription[/{name}]`" + ` with a notification Bundle or resource | ` + "`application/fhir+json`" + ` | 200 |
| ` + "`PUT {base}/subscription/{name}/{type}/{id}`" + ` (R4 rest-hook with payload) | ` + "`application/fhir+json`" + ` | 200 |

Invalid content is answered 400 with an OperationOutcome naming each issue and is kept as
well, with its reason in the ` + "`fhir.invalid`" + ` metadata. 401 answers a missing or wrong
token, 413 a body over ` + "`max_body_size`" + `, 415 a body that is not JSON, 422 a resource type
not in ` + "`resource_types`" + `, and 503 a message that could not be stored (the sender should
retry). Message metadata: ` + "`fhir.resource_type`, `fhir.id`, `fhir.bundle_type`, `fhir.subscription`" + `
and ` + "`remote_addr`" + `.

A Subscription points here with ` + "`channel.type: rest-hook`" + `, ` + "`channel.endpoint: https://osprey.example.org/fhir/subscription/<name>`" + `
and ` + "`channel.header: [\"Authorization: Bearer <token>\"]`" + `.`,
		Fields: []spec.Field{
			spec.NewString(fAddress, "Host and port to listen on. Use 0.0.0.0:8083 to accept connections from the network.").
				WithDefault(DefaultAddress).WithExamples("0.0.0.0:8083"),
			spec.NewString(fBasePath, "Path of the FHIR base.").WithDefault(DefaultBasePath).WithLint(speclint.BasePath),
			bearer.TokensField(fTokens, "", "${OSPREY_FHIR_TOKEN}"),
			tlsconf.HTTPS().Field(),
			spec.NewBytes(fMaxBodySize, "Largest request body accepted; a larger one is answered 413.").WithDefault("16MiB").WithLint(speclint.PositiveSize),
			spec.NewStrings(fResourceTypes, "Resource types accepted (list Bundle to take Bundles). Empty accepts every type.").
				AsOptional().WithLint(resourceTypes).WithExamples([]any{"ServiceRequest", "Bundle"}),
		},
		Examples: []spec.Example{
			{
				Title:   "Orders and notifications from the EHR",
				Summary: "A token from the environment, on every interface.",
				YAML: `address: 0.0.0.0:8083
tokens: ["${OSPREY_FHIR_TOKEN}"]
`,
			},
			{
				Title:   "HTTPS, ServiceRequests only",
				Summary: "Anything else is answered 422 and kept as rejected.",
				YAML: `address: 0.0.0.0:8443
tokens: ["${OSPREY_FHIR_TOKEN}"]
resource_types: [ServiceRequest, Bundle]
tls:
  cert_file: /etc/osprey/tls/server.crt
  key_file: /etc/osprey/tls/server.key
`,
			},
		},
	}
}

// DestinationSpec declares the configuration of destination.fhir.
func DestinationSpec() spec.Component {
	return spec.Component{
		Name:    "fhir",
		Summary: "Send FHIR R4 resources and transaction Bundles to a FHIR server.",
		Description: `The message body is FHIR R4 JSON (` + "`application/fhir+json`" + `, as the HL7v2 and AI-result
mappings make it), validated before it is sent. A transaction or batch Bundle is POSTed to
` + "`url`" + `; any other resource is created with ` + "`POST {url}/{resourceType}`" + `, with an
` + "`If-None-Exist`" + ` header taken from the message's ` + "`fhir.if_none_exist`" + ` metadata or, with
` + "`conditional: identifier`" + `, from the resource's first identifier, so that a redelivery does not
create the resource twice.

| answer | outcome |
|---|---|
| 2xx (a batch: every entry 2xx) | delivered; the OperationOutcome or response Bundle is the reply |
| no answer, 408, 429, 5xx (a batch: an entry 5xx) | retried; the wait a Retry-After asks for is reported to the retry policy |
| any other 4xx (a batch: an entry 4xx) | rejected, with the OperationOutcome's text as the reply summary |
| body not valid FHIR R4 | dead-lettered at once (never sent) |

Credentials are one of a static bearer ` + "`token`" + `, HTTP basic, or OAuth2 client credentials
(SMART Backend Services with a client secret): the token is fetched at the first send, kept
until shortly before it expires, and fetched again at once when the server answers 401.`,
		Fields: []spec.Field{
			spec.NewString(fURL, "FHIR service base of the server.").WithLint(speclint.HTTPURL).WithExamples("https://ehr.example.org/fhir/R4"),
			spec.NewObject(fAuth, "Credentials: one of token, username and password, or oauth2. Omit for none.",
				spec.NewString(fToken, "Bearer token sent as `Authorization: Bearer ...`.").AsOptional().AsSecret(),
				spec.NewString(fUsername, "User name for HTTP basic authentication.").AsOptional(),
				spec.NewString(fPassword, "Password for HTTP basic authentication.").AsOptional().AsSecret(),
				spec.NewObject(fOAuth2, "OAuth2 client-credentials grant.",
					spec.NewString(fTokenURL, "Token endpoint.").WithLint(speclint.HTTPURL).WithExamples("https://auth.example.org/oauth2/token"),
					spec.NewString(fClientID, "Client id."),
					spec.NewString(fClientSecret, "Client secret.").AsSecret(),
					spec.NewStrings(fScopes, "Scopes asked for.").AsOptional().WithExamples([]any{"system/*.write"}),
					spec.NewMap(fParams, "Extra form values for the token request, such as audience.").AsOptional().AsAdvanced(),
				).AsOptional(),
			).AsOptional(),
			spec.NewDuration(fTimeout, "How long one request may take, token requests included.").WithDefault("60s").WithLint(speclint.PositiveDuration),
			spec.NewString(fConditional, "Conditional create for single resources: none (only from fhir.if_none_exist metadata) or identifier (from the resource's first identifier).").
				WithDefault(ConditionalNone).WithEnum(ConditionalNone, ConditionalIdentifier),
			spec.NewString(fPrefer, "What the server is asked to return (`Prefer: return=...`).").
				WithDefault("OperationOutcome").WithEnum("OperationOutcome", "minimal", "representation").AsAdvanced(),
			spec.NewMap(fHeaders, "Extra headers sent with every request.").AsOptional().AsAdvanced(),
			spec.NewInt(fParallelism, "Messages in flight at once on an unordered channel.").WithDefault(DefaultParallelism).WithLint(positiveInt).AsAdvanced(),
			clientTLS.Field(),
		},
		Examples: []spec.Example{
			{
				Title:   "EHR with OAuth2 client credentials",
				Summary: "The client secret from the environment; conditional creates by identifier.",
				YAML: `url: https://ehr.example.org/fhir/R4
conditional: identifier
auth:
  oauth2:
    token_url: https://ehr.example.org/oauth2/token
    client_id: osprey
    client_secret: ${EHR_CLIENT_SECRET}
    scopes: [system/*.write]
`,
			},
			{
				Title:   "HAPI FHIR with basic authentication",
				Summary: "A private CA signs the server's certificate.",
				YAML: `url: https://hapi.example.org/fhir
auth:
  username: osprey
  password: ${HAPI_PASSWORD}
tls:
  ca_file: /etc/osprey/tls/hospital-ca.crt
`,
			},
		},
	}
}

func sourceConfig(p *spec.Parsed) SourceConfig {
	cfg := SourceConfig{
		Address:       p.String(fAddress),
		BasePath:      p.String(fBasePath),
		Tokens:        p.Strings(fTokens),
		MaxBodySize:   p.Bytes(fMaxBodySize),
		ResourceTypes: p.Strings(fResourceTypes),
	}
	cfg.TLS = tlsconf.HTTPS().Parse(p)
	return cfg
}

func destinationConfig(p *spec.Parsed) DestinationConfig {
	cfg := DestinationConfig{
		URL:         p.String(fURL),
		Timeout:     p.Duration(fTimeout),
		Conditional: p.String(fConditional),
		Prefer:      p.String(fPrefer),
		Headers:     p.Map(fHeaders),
		Parallelism: p.Int(fParallelism),
	}
	if p.Has(fAuth) {
		a := p.Object(fAuth)
		cfg.Auth = Auth{Token: a.String(fToken), Username: a.String(fUsername), Password: a.String(fPassword)}
		if a.Has(fOAuth2) {
			o := a.Object(fOAuth2)
			cfg.Auth.OAuth2 = &OAuth2{TokenURL: o.String(fTokenURL), ClientID: o.String(fClientID), ClientSecret: o.String(fClientSecret),
				Scopes: o.Strings(fScopes), Params: o.Map(fParams)}
		}
	}
	cfg.TLS = clientTLS.Parse(p)
	return cfg
}
