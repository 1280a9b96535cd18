package fhir_test

import (
	"testing"

	"github.com/osprey-health/osprey/channels/fhir"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
)

func TestSpecsCheck(t *testing.T) {
	for _, c := range []spec.Component{fhir.SourceSpec(), fhir.DestinationSpec()} {
		t.Run(c.Name, func(t *testing.T) {
			if err := spec.Check(c); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRegisteredComponentsBuild(t *testing.T) {
	tests := []struct {
		name, kind, yaml string
	}{
		{"source defaults", "source", "{}"},
		{"source full", "source", "address: 0.0.0.0:8443\nbase_path: /r4\ntokens: [a, b]\nmax_body_size: 1MiB\nresource_types: [ServiceRequest, Bundle]\n"},
		{"destination bearer", "destination", "url: https://ehr.example.org/fhir\nauth: {token: t}\n"},
		{"destination basic", "destination", "url: http://127.0.0.1:8080/fhir\nauth: {username: u, password: p}\ntimeout: 5s\nconditional: identifier\n"},
		{"destination oauth2", "destination", "url: https://ehr.example.org/fhir\nauth:\n  oauth2:\n    token_url: https://auth.example.org/token\n    client_id: osprey\n    client_secret: s\n    scopes: [system/*.write]\n    params: {audience: ehr}\nheaders: {X-Tenant: rad}\nparallelism: 2\nprefer: representation\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c spec.Component
			var ok bool
			if tc.kind == "source" {
				c, ok = engine.Global.SourceSpec("fhir")
			} else {
				c, ok = engine.Global.DestinationSpec("fhir")
			}
			if !ok {
				t.Fatalf("%s.fhir is not registered", tc.kind)
			}
			conf, lints := spec.ParseYAML(tc.yaml, c.Fields)
			if len(lints) != 0 {
				t.Fatalf("lints: %v", lints)
			}
			var err error
			if tc.kind == "source" {
				_, err = engine.Global.NewSource("fhir", conf, engine.Resources{Channel: "c"})
			} else {
				_, err = engine.Global.NewDestination("fhir", conf, engine.Resources{Channel: "c"})
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSpecExamplesParse(t *testing.T) {
	for _, c := range []spec.Component{fhir.SourceSpec(), fhir.DestinationSpec()} {
		for _, ex := range c.Examples {
			t.Run(c.Name+"/"+ex.Title, func(t *testing.T) {
				if _, lints := spec.ParseYAML(ex.YAML, c.Fields); spec.HasErrors(lints) {
					t.Errorf("example does not lint: %v", lints)
				}
			})
		}
	}
}

func TestSpecLints(t *testing.T) {
	tests := []struct {
		name string
		c    spec.Component
		yaml string
	}{
		{"url required", fhir.DestinationSpec(), "{}"},
		{"url scheme", fhir.DestinationSpec(), "url: ftp://ehr/fhir\n"},
		{"token url scheme", fhir.DestinationSpec(), "url: http://ehr\nauth: {oauth2: {token_url: x, client_id: a, client_secret: b}}\n"},
		{"client secret required", fhir.DestinationSpec(), "url: http://ehr\nauth: {oauth2: {token_url: http://a/t, client_id: a}}\n"},
		{"conditional enum", fhir.DestinationSpec(), "url: http://ehr\nconditional: always\n"},
		{"timeout zero", fhir.DestinationSpec(), "url: http://ehr\ntimeout: 0s\n"},
		{"parallelism zero", fhir.DestinationSpec(), "url: http://ehr\nparallelism: 0\n"},
		{"unknown key", fhir.DestinationSpec(), "url: http://ehr\nretries: 3\n"},
		{"base path", fhir.SourceSpec(), "base_path: fhir\n"},
		{"body size", fhir.SourceSpec(), "max_body_size: 0\n"},
		{"resource type name", fhir.SourceSpec(), "resource_types: [patient]\n"},
		{"tls needs cert", fhir.SourceSpec(), "tls: {key_file: k}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, lints := spec.ParseYAML(tc.yaml, tc.c.Fields); !spec.HasErrors(lints) {
				t.Errorf("no error lint for %q", tc.yaml)
			}
		})
	}
}
