package mllp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
)

func TestRegisteredSpecsBuildFromDefaults(t *testing.T) {
	src, ok := engine.Global.SourceSpec("mllp")
	if !ok || src.ID() != "source.mllp" {
		t.Fatalf("source.mllp not registered (got %q)", src.ID())
	}
	conf, lints := spec.ParseYAML("{}", src.Fields)
	if len(lints) != 0 {
		t.Fatalf("empty source config: %v", lints)
	}
	if s, err := engine.Global.NewSource("mllp", conf, engine.Resources{}); err != nil || s == nil {
		t.Fatalf("NewSource from defaults: %v", err)
	}

	dst, ok := engine.Global.DestinationSpec("mllp")
	if !ok || dst.ID() != "destination.mllp" {
		t.Fatalf("destination.mllp not registered (got %q)", dst.ID())
	}
	if _, lints := spec.ParseYAML("{}", dst.Fields); !spec.HasErrors(lints) {
		t.Error("destination without address: no lint, want address to be required")
	}
	conf, lints = spec.ParseYAML("address: 127.0.0.1:2575\n", dst.Fields)
	if len(lints) != 0 {
		t.Fatalf("minimal destination config: %v", lints)
	}
	if d, err := engine.Global.NewDestination("mllp", conf, engine.Resources{}); err != nil || d == nil {
		t.Fatalf("NewDestination from defaults: %v", err)
	}
}

func TestSpecExamplesParse(t *testing.T) {
	for _, c := range []spec.Component{mllp.SourceSpec(), mllp.DestinationSpec()} {
		for _, ex := range c.Examples {
			t.Run(c.Name+"/"+ex.Title, func(t *testing.T) {
				if _, lints := spec.ParseYAML(ex.YAML, c.Fields); len(lints) != 0 {
					t.Errorf("example does not lint clean: %v", lints)
				}
			})
		}
	}
}

func TestSpecLints(t *testing.T) {
	src := mllp.SourceSpec().Fields
	dst := mllp.DestinationSpec().Fields
	tests := []struct {
		name   string
		fields []spec.Field
		yaml   string
		want   string // in a lint message
	}{
		{"unknown ack mode", src, "ack_mode: loud\n", "ack_mode"},
		{"unknown field", src, "adress: 0.0.0.0:2575\n", "adress"},
		{"negative idle timeout", src, "idle_timeout: -1s\n", "negative"},
		{"tls without key", src, "tls:\n  cert_file: a.crt\n", "key_file"},
		{"zero connections", dst, "address: a:1\nconnections: 0\n", "at least 1"},
		{"zero ack timeout", dst, "address: a:1\nack_timeout: 0s\n", "longer than 0s"},
		{"bad tls version", dst, "address: a:1\ntls:\n  min_version: \"1.0\"\n", "min_version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, lints := spec.ParseYAML(tt.yaml, tt.fields)
			err := spec.LintsError(lints)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("lints %v, want one mentioning %q", lints, tt.want)
			}
		})
	}
}

// TestSpecMapsToConfig checks the YAML fields reach the component: a source built from a
// spec listens where the YAML says.
func TestSpecMapsToConfig(t *testing.T) {
	conf, lints := spec.ParseYAML("address: 127.0.0.1:0\nack_mode: enhanced\nmax_message_size: 1KiB\n", mllp.SourceSpec().Fields)
	if len(lints) != 0 {
		t.Fatal(lints)
	}
	s, err := engine.Global.NewSource("mllp", conf, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	src := s.(*mllp.Source)
	if err := src.Listen(); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	if !strings.HasPrefix(src.Addr().String(), "127.0.0.1:") {
		t.Errorf("listening on %s, want 127.0.0.1", src.Addr())
	}
}
