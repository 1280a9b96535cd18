package dicomweb

import (
	"errors"

	"github.com/osprey-health/osprey/channels/internal/bearer"
	"github.com/osprey-health/osprey/channels/internal/speclint"
	"github.com/osprey-health/osprey/channels/internal/tlsconf"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
)

// Field names, shared by the specs and the constructors that read them.
const (
	fAddress        = "address"
	fBasePath       = "base_path"
	fPublicURL      = "public_url"
	fTokens         = "tokens"
	fTokenKey       = "token_key"
	fTLS            = "tls"
	fPACSTLS        = "pacs_tls"
	fMaxRequestSize = "max_request_size"
	fQuietPeriod    = "quiet_period"
	fRetention      = "retention"
	fBucket         = "bucket"
	fPath           = "path"
	fURL            = "url"
	fAllowedURLs    = "allowed_urls"
	fAuth           = "auth"
	fToken          = "token"
	fUsername       = "username"
	fPassword       = "password"
	fTimeout        = "timeout"
	fInterval       = "interval"
	fLookback       = "lookback"
	fWaitStable     = "wait_stable"
	fRetrieveAuth   = "retrieve_auth"
)

func init() {
	engine.RegisterSource(SourceSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Source, error) {
		return NewSource(sourceConfig(conf), res)
	})
	engine.RegisterSource(NotifySpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Source, error) {
		return NewNotifySource(notifyConfig(conf), res)
	})
	engine.RegisterSource(PollSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Source, error) {
		return NewPoller(pollConfig(conf), res)
	})
	engine.RegisterDestination(DestinationSpec(), func(conf *spec.Parsed, res engine.Resources) (engine.Destination, error) {
		return NewDestination(destinationConfig(conf), res)
	})
}

func bucketName(v any) error {
	s, _ := v.(string)
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return errors.New("may hold only letters, digits, - and _")
		}
	}
	return nil
}

// clientTLS declares a tls object, named name, for the connections to a PACS.
func clientTLS(name string) tlsconf.ClientSpec {
	return tlsconf.ClientSpec{Name: name, Desc: "TLS settings for an https:// PACS URL. Omit to use the system roots.", Peer: "server"}
}

func authField(what string) spec.Field {
	return spec.NewObject(fAuth, "Credentials for "+what+": a bearer token, or a user name and password (HTTP basic). Omit for none.",
		spec.NewString(fToken, "Bearer token sent as `Authorization: Bearer ...`.").AsOptional().AsSecret(),
		spec.NewString(fUsername, "User name for HTTP basic authentication.").AsOptional(),
		spec.NewString(fPassword, "Password for HTTP basic authentication.").AsOptional().AsSecret(),
	).AsOptional()
}

func tokensField(from string) spec.Field {
	return bearer.TokensField(fTokens, from, "${OSPREY_DICOMWEB_TOKEN}")
}

// SourceSpec declares the configuration of source.dicomweb.
func SourceSpec() spec.Component {
	return spec.Component{
		Name:    "dicomweb",
		Summary: "Receive studies by STOW-RS and serve them back by WADO-RS and QIDO-RS; one message per complete study.",
		Description: `A DICOMweb origin server. Modalities, PACSes and gateways push instances with STOW-RS
(` + "`POST {base}/studies`" + `, multipart/related; type="application/dicom"). Each part is checked
(Part 10 header, parses, SOP Class/Instance, Study and Series Instance UIDs, the study of the URL)
and kept in a JetStream object store for ` + "`retention`" + `; a SOP Instance UID already held
is accepted again without being stored twice. The answer is the PS3.18 response dataset:
200 when every instance was stored, 202 when some failed, 409 when none was, 415 for another
content type, 413 over ` + "`max_request_size`" + `.

A study is complete when no instance has arrived for ` + "`quiet_period`" + `; the channel then
gets one message of type ` + "`application/vnd.osprey.study+json`" + ` (a study summary, see
docs/dicomweb.md). Studies in progress are tracked in JetStream, so a restart does not lose
them. A study without AccessionNumber is accepted and announced with a warning.

The same server answers WADO-RS (studies, series, instances, metadata, frames of uncompressed
images) and QIDO-RS for what it holds, for AI plugins. Bearer ` + "`tokens`" + ` open everything;
study-scoped tokens minted by the plugin layer (signed with ` + "`token_key`" + `) open one study for
a short time.`,
		Fields: []spec.Field{
			spec.NewString(fAddress, "Host and port to listen on. Use 0.0.0.0:8081 to accept connections from the network.").
				WithDefault(DefaultAddress).WithExamples("0.0.0.0:8081"),
			spec.NewString(fBasePath, "Path of the DICOMweb service root.").WithDefault(DefaultBasePath).WithLint(speclint.BasePath),
			spec.NewString(fPublicURL, "Service root as clients reach it (behind a proxy), used in RetrieveURL and study messages. Derived from the listener when omitted.").
				AsOptional().WithLint(speclint.HTTPURL).WithExamples("https://osprey.example.org/dicom-web").AsAdvanced(),
			tokensField("STOW-RS, WADO-RS and QIDO-RS clients"),
			spec.NewString(fTokenKey, "Key that signs study-scoped tokens (at least 32 characters). A random key is made at start when omitted, and scoped tokens then do not survive a restart.").
				AsOptional().AsSecret(),
			tlsconf.HTTPS().Field(),
			spec.NewBytes(fMaxRequestSize, "Largest STOW-RS request accepted; a larger one is answered 413. Parts are read one at a time, never the whole request.").
				WithDefault("2GiB").WithLint(speclint.PositiveSize),
			spec.NewDuration(fQuietPeriod, "A study is complete when no instance of it has arrived for this long.").WithDefault("30s").WithLint(speclint.PositiveDuration),
			spec.NewDuration(fRetention, "How long received instances are kept for WADO-RS.").WithDefault("24h").WithLint(speclint.PositiveDuration),
			spec.NewString(fBucket, `JetStream object store bucket for the instances; "osprey-<channel>-instances" when omitted.`).
				AsOptional().WithLint(bucketName).AsAdvanced(),
		},
		Examples: []spec.Example{
			{
				Title:   "Loopback endpoint for a local PACS gateway",
				Summary: "The defaults, with a token.",
				YAML:    "tokens: [\"${OSPREY_DICOMWEB_TOKEN}\"]\n",
			},
			{
				Title:   "Network endpoint with TLS",
				Summary: "Studies from the modalities' router; announce after two quiet minutes.",
				YAML: `address: 0.0.0.0:8443
tokens: ["${OSPREY_DICOMWEB_TOKEN}"]
token_key: ${OSPREY_TOKEN_KEY}
quiet_period: 2m
retention: 48h
tls:
  cert_file: /etc/osprey/tls/server.crt
  key_file: /etc/osprey/tls/server.key
`,
			},
		},
	}
}

// NotifySpec declares the configuration of source.dicomweb_notify.
func NotifySpec() spec.Component {
	return spec.Component{
		Name:    "dicomweb_notify",
		Summary: "Take \"study stable\" webhooks from a PACS, read the study's metadata by WADO-RS and hand the channel a study message.",
		Description: `Listens for ` + "`POST {path}`" + ` with a JSON body such as
` + "`{\"event\":\"study.stable\",\"study_instance_uid\":\"1.2...\",\"accession_number\":\"A123\",\"dicomweb\":\"http://pacs:8042/dicom-web\"}`" + `
(examples/studies/orthanc-notify.lua sends it from Orthanc's OnStableStudy). The source then
queues the notification durably in JetStream and answers 202, then reads
` + "`GET {dicomweb}/studies/{uid}/metadata`" + ` with ` + "`auth`" + `, summarises the study and hands it to the
channel. A study that cannot be read is retried with backoff for a day. (The webhook is
answered before the read because Orthanc runs Lua callbacks under a lock its DICOMweb
requests need.) 400 answers a malformed notification, 401 a missing token, 503 a queue that
could not be written (the sender should retry).

` + "`dicomweb`" + ` may be omitted, and then ` + "`url`" + ` is used; when given, it must be ` + "`url`" + ` or one of
` + "`allowed_urls`" + `, so a webhook can never make Osprey send its PACS credentials elsewhere.`,
		Fields: []spec.Field{
			spec.NewString(fAddress, "Host and port to listen on.").WithDefault("127.0.0.1:8082"),
			spec.NewString(fPath, "Path that takes the notifications.").WithDefault("/notify").WithLint(speclint.BasePath),
			tokensField("the PACS posting notifications"),
			tlsconf.HTTPS().Field(),
			spec.NewString(fURL, "DICOMweb service root of the PACS, used when a notification names none.").
				WithLint(speclint.HTTPURL).WithExamples("http://127.0.0.1:8042/dicom-web"),
			spec.NewStrings(fAllowedURLs, "Other DICOMweb roots a notification may name (several PACSes behind one webhook).").AsOptional().AsAdvanced(),
			authField("the PACS's WADO-RS"),
			spec.NewDuration(fTimeout, "How long reading a study's metadata may take.").WithDefault("60s").WithLint(speclint.PositiveDuration),
			clientTLS(fPACSTLS).Field(),
			spec.NewString(fBucket, `JetStream key-value bucket of notifications waiting to be read; "osprey-<channel>-notify" when omitted.`).
				AsOptional().WithLint(bucketName).AsAdvanced(),
		},
		Examples: []spec.Example{{
			Title:   "Orthanc on the same host",
			Summary: "Orthanc's Lua script posts to http://127.0.0.1:8082/notify.",
			YAML: `url: http://127.0.0.1:8042/dicom-web
tokens: ["${OSPREY_NOTIFY_TOKEN}"]
auth:
  username: osprey
  password: ${ORTHANC_PASSWORD}
`,
		}},
	}
}

// PollSpec declares the configuration of source.qido_poll.
func PollSpec() spec.Component {
	return spec.Component{
		Name:    "qido_poll",
		Summary: "Poll a PACS with QIDO-RS for new studies, read each one's metadata by WADO-RS and hand the channel a study message.",
		Description: `For a PACS that cannot call out. Every ` + "`interval`" + ` the source asks
` + "`GET {url}/studies?StudyDate={today-lookback}-{today}`" + `, and for each study it has not announced
yet reads its metadata, summarises it and hands it to the channel. With ` + "`wait_stable`" + ` a study
is announced only once its NumberOfStudyRelatedInstances is the same on two polls in a row, so
a study still arriving is not announced half-way. The studies announced are remembered in a
JetStream key-value bucket for ` + "`lookback`" + ` plus a day, so a restart does not announce them again.`,
		Fields: []spec.Field{
			spec.NewString(fURL, "DICOMweb service root of the PACS.").WithLint(speclint.HTTPURL).WithExamples("http://127.0.0.1:8042/dicom-web"),
			spec.NewDuration(fInterval, "Time between polls.").WithDefault("1m").WithLint(speclint.PositiveDuration),
			spec.NewDuration(fLookback, "How far back StudyDate may lie; 0 searches without a date (small archives and tests).").
				WithDefault("24h").WithLint(speclint.NonNegativeDuration),
			spec.NewBool(fWaitStable, "Announce a study only when its instance count did not change between two polls.").WithDefault(true),
			authField("the PACS's QIDO-RS and WADO-RS"),
			spec.NewDuration(fTimeout, "How long one request to the PACS may take.").WithDefault("60s").WithLint(speclint.PositiveDuration),
			clientTLS(fTLS).Field(),
			spec.NewString(fBucket, `JetStream key-value bucket remembering announced studies; "osprey-<channel>-qido-seen" when omitted.`).
				AsOptional().WithLint(bucketName).AsAdvanced(),
		},
		Examples: []spec.Example{{
			Title:   "Poll the PACS every 30 seconds",
			Summary: "Bearer token from the environment.",
			YAML: `url: https://pacs.example.org/dicom-web
interval: 30s
auth:
  token: ${PACS_TOKEN}
`,
		}},
	}
}

// DestinationSpec declares the configuration of destination.dicomweb.
func DestinationSpec() spec.Component {
	return spec.Component{
		Name:    "dicomweb",
		Summary: "Store DICOM instances (structured reports, say) or whole studies in a PACS by STOW-RS.",
		Description: `Sends the message body, one Part 10 instance (` + "`application/dicom`" + `) or a ready
multipart/related body, as ` + "`POST {url}/studies`" + `. A study message (` + "`application/vnd.osprey.study+json`" + `)
forwards the whole study: its instances are fetched by WADO-RS from the root its summary names
(with ` + "`retrieve_auth`" + `) and stored in the PACS in one request. 200 is delivered; so is a 202 or 409 whose
only failures say the instance already exists (Failure Reason 0111H), which makes retries safe.
5xx answers and timeouts are transport errors that the channel retries; any other 4xx, or a
response that refuses the instance, is a rejection. The response dataset is stored as the
delivery's reply.`,
		Fields: []spec.Field{
			spec.NewString(fURL, "DICOMweb service root of the PACS.").WithLint(speclint.HTTPURL).WithExamples("http://127.0.0.1:8042/dicom-web"),
			authField("the PACS's STOW-RS"),
			spec.NewObject(fRetrieveAuth, "Credentials for fetching a study message's instances (from Osprey's own source.dicomweb, usually): a bearer token, or a user name and password.",
				spec.NewString(fToken, "Bearer token.").AsOptional().AsSecret(),
				spec.NewString(fUsername, "User name for HTTP basic authentication.").AsOptional(),
				spec.NewString(fPassword, "Password for HTTP basic authentication.").AsOptional().AsSecret(),
			).AsOptional(),
			spec.NewDuration(fTimeout, "How long one STOW-RS request may take.").WithDefault("60s").WithLint(speclint.PositiveDuration),
			clientTLS(fTLS).Field(),
		},
		Examples: []spec.Example{{
			Title:   "Results back to Orthanc",
			Summary: "Basic authentication with the password from the environment.",
			YAML: `url: http://127.0.0.1:8042/dicom-web
auth:
  username: osprey
  password: ${ORTHANC_PASSWORD}
`,
		}},
	}
}

func sourceConfig(p *spec.Parsed) SourceConfig {
	cfg := SourceConfig{
		Address:        p.String(fAddress),
		BasePath:       p.String(fBasePath),
		PublicURL:      p.String(fPublicURL),
		Tokens:         p.Strings(fTokens),
		MaxRequestSize: p.Bytes(fMaxRequestSize),
		QuietPeriod:    p.Duration(fQuietPeriod),
		Retention:      p.Duration(fRetention),
		Bucket:         p.String(fBucket),
		TLS:            tlsconf.HTTPS().Parse(p),
	}
	if k := p.String(fTokenKey); k != "" {
		cfg.TokenKey = []byte(k)
	}
	return cfg
}

func auth(p *spec.Parsed) Auth {
	if !p.Has(fAuth) {
		return Auth{}
	}
	a := p.Object(fAuth)
	return Auth{Token: a.String(fToken), Username: a.String(fUsername), Password: a.String(fPassword)}
}

func notifyConfig(p *spec.Parsed) NotifyConfig {
	return NotifyConfig{
		Address:     p.String(fAddress),
		Path:        p.String(fPath),
		Tokens:      p.Strings(fTokens),
		TLS:         tlsconf.HTTPS().Parse(p),
		URL:         p.String(fURL),
		AllowedURLs: p.Strings(fAllowedURLs),
		Client:      ClientConfig{Auth: auth(p), Timeout: p.Duration(fTimeout), TLS: clientTLS(fPACSTLS).Parse(p)},
		Bucket:      p.String(fBucket),
	}
}

func pollConfig(p *spec.Parsed) PollConfig {
	return PollConfig{
		URL:        p.String(fURL),
		Interval:   p.Duration(fInterval),
		Lookback:   p.Duration(fLookback),
		WaitStable: p.Bool(fWaitStable),
		Bucket:     p.String(fBucket),
		Client:     ClientConfig{Auth: auth(p), Timeout: p.Duration(fTimeout), TLS: clientTLS(fTLS).Parse(p)},
	}
}

func destinationConfig(p *spec.Parsed) DestinationConfig {
	cfg := DestinationConfig{
		URL:    p.String(fURL),
		Client: ClientConfig{Auth: auth(p), Timeout: p.Duration(fTimeout), TLS: clientTLS(fTLS).Parse(p)},
	}
	cfg.Retrieve = ClientConfig{Timeout: cfg.Client.Timeout}
	if p.Has(fRetrieveAuth) {
		a := p.Object(fRetrieveAuth)
		cfg.Retrieve.Auth = Auth{Token: a.String(fToken), Username: a.String(fUsername), Password: a.String(fPassword)}
	}
	return cfg
}
