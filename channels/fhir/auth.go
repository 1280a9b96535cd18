package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Auth is how the destination proves itself to the FHIR server: a static bearer token, HTTP
// basic, or OAuth2 client credentials (the SMART Backend Services shape, with a shared
// secret). At most one may be set; the zero value sends no credentials.
type Auth struct {
	Token              string
	Username, Password string
	OAuth2             *OAuth2
}

// OAuth2 configures the client-credentials grant.
type OAuth2 struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// Params are extra form values for the token request (audience, resource).
	Params map[string]string
}

func (a Auth) check() error {
	n := 0
	if a.Token != "" {
		n++
	}
	if a.Username != "" {
		n++
	}
	if a.OAuth2 != nil {
		n++
		if a.OAuth2.TokenURL == "" || a.OAuth2.ClientID == "" {
			return errors.New("fhir: oauth2 needs token_url and client_id")
		}
		if u, err := url.Parse(a.OAuth2.TokenURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("fhir: oauth2 token_url %q is not an http(s) URL", a.OAuth2.TokenURL)
		}
	}
	if n > 1 {
		return errors.New("fhir: auth takes one of token, username/password or oauth2")
	}
	return nil
}

// tokens fetches client-credentials tokens and keeps the current one until shortly before
// it expires, or until the server refuses it. It does not use oauth2.ReuseTokenSource
// because that cannot be told to drop a token the server answered 401 to.
type tokens struct {
	cfg    clientcredentials.Config
	client *http.Client // for the token endpoint: the destination's TLS and timeout

	mu  sync.Mutex
	tok *oauth2.Token
}

func newTokens(o *OAuth2, client *http.Client) *tokens {
	params := url.Values{}
	for k, v := range o.Params {
		params.Set(k, v)
	}
	return &tokens{client: client, cfg: clientcredentials.Config{
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes, EndpointParams: params,
	}}
}

// token returns a valid access token, fetching one when none is held or it is (nearly)
// expired. Callers wait on the lock so that concurrent sends fetch once.
func (t *tokens) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok.Valid() { // Valid already allows for a few seconds of clock skew
		return t.tok.AccessToken, nil
	}
	tok, err := t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.client))
	if err != nil {
		return "", fmt.Errorf("fhir: oauth2 token from %s: %w", t.cfg.TokenURL, err)
	}
	t.tok = tok
	return tok.AccessToken, nil
}

// invalidate drops access if it is still the held token, so the next request fetches a new
// one; a token another send already replaced is left alone.
func (t *tokens) invalidate(access string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.tok.AccessToken == access {
		t.tok = nil
	}
}
