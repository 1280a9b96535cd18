// Package bearer is how the HTTP sources take static bearer tokens: the tokens field of
// their specs, and the check of a request's Authorization header against those tokens in
// constant time, so that every listener is configured and guarded the same way.
package bearer

import (
	"crypto/subtle"
	"slices"
	"strings"

	"github.com/osprey-health/osprey/engine/spec"
)

// TokensField declares the list of tokens a listener accepts. from names the clients
// expected to send them ("" for no one in particular); example is the ${ENV} reference
// the docs show.
func TokensField(name, from, example string) spec.Field {
	desc := "Bearer tokens accepted"
	if from != "" {
		desc += " from " + from
	}
	return spec.NewStrings(name, desc+". Empty accepts requests without a token: keep such a listener on loopback.").
		AsOptional().AsSecret().WithExamples([]any{example})
}

// Accepts reports whether header, an Authorization header value, is "Bearer " and one of
// tokens. The comparison takes the same time whichever token is nearest, so a client
// cannot find a token by timing its guesses.
func Accepts(header string, tokens []string) bool {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	tok = strings.TrimSpace(tok)
	return slices.ContainsFunc(tokens, func(t string) bool { return subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 })
}
