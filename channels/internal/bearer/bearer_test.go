package bearer_test

import (
	"testing"

	"github.com/osprey-health/osprey/channels/internal/bearer"
)

func TestAccepts(t *testing.T) {
	tokens := []string{"alpha", "bravo"}
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"first token", "Bearer alpha", true},
		{"second token", "Bearer bravo", true},
		{"surrounding space", "Bearer  bravo ", true},
		{"unknown token", "Bearer charlie", false},
		{"prefix of a token", "Bearer alp", false},
		{"empty token", "Bearer ", false},
		{"no scheme", "alpha", false},
		{"basic scheme", "Basic alpha", false},
		{"no header", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bearer.Accepts(tc.header, tokens); got != tc.want {
				t.Errorf("Accepts(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
	if bearer.Accepts("Bearer ", nil) {
		t.Error("an empty token list accepted an empty token")
	}
}

func TestTokensField(t *testing.T) {
	tests := []struct{ from, want string }{
		{"", "Bearer tokens accepted. Empty accepts requests without a token: keep such a listener on loopback."},
		{"the PACS", "Bearer tokens accepted from the PACS. Empty accepts requests without a token: keep such a listener on loopback."},
	}
	for _, tc := range tests {
		f := bearer.TokensField("tokens", tc.from, "${T}")
		if f.Description != tc.want || !f.Secret || !f.Optional {
			t.Errorf("TokensField(%q) = %q secret %v optional %v, want %q, secret and optional", tc.from, f.Description, f.Secret, f.Optional, tc.want)
		}
	}
}
