package dicomweb_test

import (
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
)

func TestSpecsCheck(t *testing.T) {
	for _, c := range []spec.Component{dicomweb.SourceSpec(), dicomweb.NotifySpec(), dicomweb.PollSpec(), dicomweb.DestinationSpec()} {
		t.Run(c.Name, func(t *testing.T) {
			if err := spec.Check(c); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRegisteredComponentsBuild(t *testing.T) {
	tests := []struct {
		kind, name, yaml string
	}{
		{"source", "dicomweb", "{}"},
		{"source", "dicomweb", "tokens: [abc]\nquiet_period: 5s\nretention: 1h\nmax_request_size: 10MiB\ntoken_key: 0123456789abcdef0123456789abcdef\n"},
		{"source", "dicomweb_notify", "url: http://127.0.0.1:8042/dicom-web\n"},
		{"source", "qido_poll", "url: http://127.0.0.1:8042/dicom-web\nlookback: 0s\nauth: {token: t}\n"},
		{"destination", "dicomweb", "url: http://127.0.0.1:8042/dicom-web\nauth: {username: u, password: p}\ntimeout: 5s\n"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"."+tc.name, func(t *testing.T) {
			var c spec.Component
			var ok bool
			if tc.kind == "source" {
				c, ok = engine.Global.SourceSpec(tc.name)
			} else {
				c, ok = engine.Global.DestinationSpec(tc.name)
			}
			if !ok {
				t.Fatalf("%s.%s is not registered", tc.kind, tc.name)
			}
			conf, lints := spec.ParseYAML(tc.yaml, c.Fields)
			if len(lints) != 0 {
				t.Fatalf("lints: %v", lints)
			}
			var err error
			if tc.kind == "source" {
				_, err = engine.Global.NewSource(tc.name, conf, engine.Resources{Channel: "c"})
			} else {
				_, err = engine.Global.NewDestination(tc.name, conf, engine.Resources{Channel: "c"})
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSpecLints(t *testing.T) {
	tests := []struct {
		name string
		c    spec.Component
		yaml string
	}{
		{"url required", dicomweb.DestinationSpec(), "{}"},
		{"url scheme", dicomweb.DestinationSpec(), "url: ftp://pacs\n"},
		{"quiet period zero", dicomweb.SourceSpec(), "quiet_period: 0s\n"},
		{"base path", dicomweb.SourceSpec(), "base_path: dicom-web\n"},
		{"bucket name", dicomweb.SourceSpec(), "bucket: a.b\n"},
		{"unknown key", dicomweb.PollSpec(), "url: http://p/dicom-web\nintervall: 1m\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, lints := spec.ParseYAML(tc.yaml, tc.c.Fields); !spec.HasErrors(lints) {
				t.Errorf("no error lint for %q", tc.yaml)
			}
		})
	}
}

func TestSourceDefaults(t *testing.T) {
	src, err := dicomweb.NewSource(dicomweb.SourceConfig{}, engine.Resources{Channel: "ct"})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.TokenKey()) != dicomweb.KeySize {
		t.Errorf("generated key of %d bytes", len(src.TokenKey()))
	}
	tok := src.MintToken("1.2.3", time.Minute)
	if uid, err := dicomweb.VerifyToken(src.TokenKey(), tok, time.Now()); err != nil || uid != "1.2.3" {
		t.Errorf("token of the source's key: %q, %v", uid, err)
	}
}
