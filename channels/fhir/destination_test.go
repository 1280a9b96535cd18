package fhir_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/fhir"
	"github.com/osprey-health/osprey/engine"
)

func newDest(t *testing.T, cfg fhir.DestinationConfig) *fhir.Destination {
	t.Helper()
	d, err := fhir.NewDestination(cfg, engine.Resources{Channel: "c"})
	if err != nil {
		t.Fatalf("NewDestination: %v", err)
	}
	return d
}

func TestSendResourceCreates(t *testing.T) {
	tests := []struct {
		name        string
		conditional string
		meta        map[string]string
		wantINE     string // If-None-Exist the server must get, decoded
	}{
		{"plain create", "", nil, ""},
		{"query from metadata", "", map[string]string{fhir.MetaIfNoneExist: "identifier=urn:oid:9|X"}, "identifier=urn:oid:9|X"},
		{"query from identifier", fhir.ConditionalIdentifier, nil, "identifier=urn:oid:1.2.3.4|MRN-1"},
		{"metadata wins over identifier", fhir.ConditionalIdentifier, map[string]string{fhir.MetaIfNoneExist: "identifier=a|b"}, "identifier=a|b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oo := outcome("information", "informational", "created")
			srv := newEHR(t, func(_ int, r received, w http.ResponseWriter) {
				answer(w, http.StatusCreated, oo, "Location", "http://x/fhir/Patient/123/_history/1")
			})
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL + "/fhir/", Conditional: tc.conditional})
			reply, err := d.Send(t.Context(), fhirMessage(patientJSON, tc.meta))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/fhir/Patient" {
				t.Errorf("request %s %s, want POST /fhir/Patient", r.Method, r.Path)
			}
			if r.Invalid != nil || r.Type != "Patient" {
				t.Errorf("server got an invalid body (%q): %v", r.Type, r.Invalid)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q", ct)
			}
			if p := r.Header.Get("Prefer"); p != "return=OperationOutcome" {
				t.Errorf("Prefer %q", p)
			}
			ine, _ := url.QueryUnescape(r.Header.Get("If-None-Exist"))
			if ine != tc.wantINE {
				t.Errorf("If-None-Exist %q, want %q", ine, tc.wantINE)
			}
			if string(reply.Body) != oo {
				t.Errorf("reply body %q, want the server's OperationOutcome", reply.Body)
			}
			if reply.Summary != "201 Created Patient/123/_history/1" && !strings.HasPrefix(reply.Summary, "201 Created http://x/fhir/Patient/123") {
				t.Errorf("summary %q", reply.Summary)
			}
		})
	}
}

func TestSendTransaction(t *testing.T) {
	respBundle := `{"resourceType":"Bundle","type":"transaction-response","entry":[` +
		`{"response":{"status":"201 Created","location":"Patient/1/_history/1"}},{"response":{"status":"201 Created","location":"Encounter/2/_history/1"}}]}`
	srv := newEHR(t, func(_ int, r received, w http.ResponseWriter) { answer(w, http.StatusOK, respBundle) })
	d := newDest(t, fhir.DestinationConfig{URL: srv.URL + "/fhir"})
	reply, err := d.Send(t.Context(), fhirMessage(transactionJSON, nil))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := srv.requests()[0]
	if r.Path != "/fhir" || r.Type != "Bundle" || r.Invalid != nil {
		t.Errorf("server got %s of type %q (invalid: %v), want a valid Bundle at the base", r.Path, r.Type, r.Invalid)
	}
	if r.Header.Get("If-None-Exist") != "" {
		t.Error("a transaction must carry its conditions in its entries, not in If-None-Exist")
	}
	if string(reply.Body) != respBundle {
		t.Errorf("reply body is not the response Bundle: %s", reply.Body)
	}
	if !strings.Contains(reply.Summary, "2 of 2 entries OK") {
		t.Errorf("summary %q", reply.Summary)
	}
}

func TestSendBatchEntryFailures(t *testing.T) {
	tests := []struct {
		name      string
		status    string
		rejected  bool
		wantInSum string
	}{
		{"entry refused", "422 Unprocessable Entity", true, "unknown code XYZ"},
		{"entry unavailable", "503 Service Unavailable", false, "unknown code XYZ"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"201 Created"}},` +
				`{"response":{"status":"` + tc.status + `","outcome":` + outcome("error", "code-invalid", "unknown code XYZ") + `}}]}`
			srv := newEHR(t, func(_ int, _ received, w http.ResponseWriter) { answer(w, http.StatusOK, resp) })
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL})
			reply, err := d.Send(t.Context(), fhirMessage(batchOf(transactionJSON), nil))
			if err == nil {
				t.Fatal("Send succeeded with a failed entry")
			}
			if got := errors.Is(err, engine.ErrRejected); got != tc.rejected {
				t.Errorf("rejected = %v, want %v (%v)", got, tc.rejected, err)
			}
			var re *fhir.RetryError
			if got := errors.As(err, &re); got == tc.rejected {
				t.Errorf("retryable = %v, want %v", got, !tc.rejected)
			}
			if !strings.Contains(reply.Summary, "entry 2") || !strings.Contains(reply.Summary, tc.wantInSum) || !strings.Contains(reply.Summary, "1 of 2 entries OK") {
				t.Errorf("summary %q", reply.Summary)
			}
		})
	}
}

func TestSendRetryable(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		min, max   time.Duration // bounds of RetryAfter()
	}{
		{"429 with seconds", http.StatusTooManyRequests, "7", 7 * time.Second, 7 * time.Second},
		{"503 with a date", http.StatusServiceUnavailable, date, 60 * time.Second, 91 * time.Second},
		{"500 without Retry-After", http.StatusInternalServerError, "", 0, 0},
		{"408", http.StatusRequestTimeout, "", 0, 0},
		{"absurd wait is capped", http.StatusTooManyRequests, "999999", time.Hour, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newEHR(t, func(_ int, _ received, w http.ResponseWriter) {
				answer(w, tc.status, outcome("error", "throttled", "slow down"), "Retry-After", tc.retryAfter)
			})
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL})
			reply, err := d.Send(t.Context(), fhirMessage(patientJSON, nil))
			var re *fhir.RetryError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RetryError", err)
			}
			if errors.Is(err, engine.ErrRejected) || errors.Is(err, engine.ErrUndeliverable) {
				t.Errorf("a %d must be retried, got %v", tc.status, err)
			}
			if re.Status != tc.status || re.RetryAfter() < tc.min || re.RetryAfter() > tc.max {
				t.Errorf("status %d retry after %s, want %d and %s..%s", re.Status, re.RetryAfter(), tc.status, tc.min, tc.max)
			}
			if !strings.Contains(reply.Summary, "slow down") {
				t.Errorf("summary %q lacks the outcome text", reply.Summary)
			}
		})
	}
}

func TestSendServerErrorThenSuccess(t *testing.T) {
	srv := newEHR(t, func(n int, _ received, w http.ResponseWriter) {
		if n == 1 {
			answer(w, http.StatusInternalServerError, "database down")
			return
		}
		answer(w, http.StatusCreated, outcome("information", "informational", "ok"))
	})
	d := newDest(t, fhir.DestinationConfig{URL: srv.URL})
	m := fhirMessage(patientJSON, nil)
	_, err := d.Send(t.Context(), m)
	var re *fhir.RetryError
	if !errors.As(err, &re) || re.Status != 500 {
		t.Fatalf("first send: %v, want a retryable 500", err)
	}
	if _, err := d.Send(t.Context(), m); err != nil {
		t.Fatalf("second send: %v", err)
	}
	if n := len(srv.requests()); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
}

func TestSendNoAnswerIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	d := newDest(t, fhir.DestinationConfig{URL: base, Timeout: 5 * time.Second})
	_, err := d.Send(t.Context(), fhirMessage(patientJSON, nil))
	var re *fhir.RetryError
	if !errors.As(err, &re) || re.Status != 0 {
		t.Fatalf("err = %v, want a *RetryError without status", err)
	}
}

func TestSendRejected(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // in the summary
	}{
		{"400 with OperationOutcome", http.StatusBadRequest, outcome("error", "required", "Patient.name is required by profile X"), "Patient.name is required by profile X"},
		{"422 with OperationOutcome", http.StatusUnprocessableEntity, outcome("error", "business-rule", "duplicate MRN"), "duplicate MRN"},
		{"404 without body", http.StatusNotFound, "", "404 Not Found"},
		{"403 with text", http.StatusForbidden, "scope missing", "scope missing"},
		{"redirect is not followed", http.StatusMovedPermanently, "", "301"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newEHR(t, func(_ int, _ received, w http.ResponseWriter) {
				answer(w, tc.status, tc.body, "Location", "http://elsewhere.invalid/fhir")
			})
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL})
			reply, err := d.Send(t.Context(), fhirMessage(patientJSON, nil))
			if !errors.Is(err, engine.ErrRejected) {
				t.Fatalf("err = %v, want ErrRejected", err)
			}
			var re *fhir.RetryError
			if errors.As(err, &re) {
				t.Error("a rejection must not be retryable")
			}
			if !strings.Contains(reply.Summary, tc.want) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("summary %q / error %q lack %q", reply.Summary, err, tc.want)
			}
			if string(reply.Body) != tc.body {
				t.Errorf("reply body %q, want the server's", reply.Body)
			}
		})
	}
}

func TestSendUndeliverable(t *testing.T) {
	tests := []struct {
		name string
		m    *engine.Message
	}{
		{"invalid resource", fhirMessage(observationInvalid, nil)},
		{"not JSON", fhirMessage("MSH|^~\\&|", nil)},
		{"HL7 content type", &engine.Message{ID: "m", ContentType: engine.ContentHL7v2, Body: []byte(patientJSON)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newEHR(t, func(_ int, _ received, w http.ResponseWriter) { answer(w, 201, "") })
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL})
			_, err := d.Send(t.Context(), tc.m)
			if !errors.Is(err, engine.ErrUndeliverable) {
				t.Fatalf("err = %v, want ErrUndeliverable", err)
			}
			if n := len(srv.requests()); n != 0 {
				t.Errorf("server got %d requests for content that is not valid FHIR", n)
			}
		})
	}
}

func TestSendStaticCredentials(t *testing.T) {
	tests := []struct {
		name string
		auth fhir.Auth
		want string
	}{
		{"bearer", fhir.Auth{Token: "s3cret"}, "Bearer s3cret"},
		{"basic", fhir.Auth{Username: "osprey", Password: "pw"}, "Basic b3NwcmV5OnB3"},
		{"none", fhir.Auth{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newEHR(t, func(_ int, r received, w http.ResponseWriter) {
				if r.Header.Get("Authorization") != tc.want {
					answer(w, http.StatusUnauthorized, outcome("error", "login", "bad credentials"))
					return
				}
				answer(w, http.StatusCreated, "")
			})
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL, Auth: tc.auth, Headers: map[string]string{"X-Tenant": "radiology"}})
			if _, err := d.Send(t.Context(), fhirMessage(patientJSON, nil)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := srv.requests()[0].Header.Get("X-Tenant"); got != "radiology" {
				t.Errorf("X-Tenant %q", got)
			}
		})
	}
}

// tokenServer is an OAuth2 token endpoint handing out tok-1, tok-2... and counting requests.
type tokenServer struct {
	*httptest.Server
	n       atomic.Int32
	expires int
	bad     atomic.Value // string: a request that failed its checks
}

func newTokenServer(t *testing.T, expires int) *tokenServer {
	ts := &tokenServer{expires: expires}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || id != "osprey" || secret != "sh" || r.PostForm.Get("scope") != "system/*.write" || r.PostForm.Get("audience") != "ehr" {
			ts.bad.Store(fmt.Sprintf("token request %v (client %q)", r.PostForm, id))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n := ts.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": ts.expires})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestSendOAuth2(t *testing.T) {
	tests := []struct {
		name       string
		expires    int    // token lifetime in seconds
		refuse     string // the FHIR server answers 401 to this token
		sends      int
		wantTokens int32
		wantReqs   int
	}{
		// A token is reused while valid.
		{"cached", 3600, "", 3, 1, 3},
		// A token whose lifetime is within the client's expiry margin is fetched again for
		// every send, as one past its expiry is.
		{"refreshed on expiry", 1, "", 3, 3, 3},
		// The server revoked tok-1 early: the 401 makes the destination fetch tok-2 and send again.
		{"refreshed on 401", 3600, "tok-1", 2, 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, tc.expires)
			srv := newEHR(t, func(_ int, r received, w http.ResponseWriter) {
				tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok || !strings.HasPrefix(tok, "tok-") || tok == tc.refuse {
					answer(w, http.StatusUnauthorized, outcome("error", "login", "token expired"))
					return
				}
				answer(w, http.StatusCreated, "")
			})
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL, Auth: fhir.Auth{OAuth2: &fhir.OAuth2{
				TokenURL: ts.URL + "/token", ClientID: "osprey", ClientSecret: "sh", Scopes: []string{"system/*.write"}, Params: map[string]string{"audience": "ehr"},
			}}})
			for i := range tc.sends {
				if _, err := d.Send(t.Context(), fhirMessage(patientJSON, nil)); err != nil {
					t.Fatalf("send %d: %v", i+1, err)
				}
			}
			if bad, _ := ts.bad.Load().(string); bad != "" {
				t.Fatal(bad)
			}
			if got := ts.n.Load(); got != tc.wantTokens {
				t.Errorf("token requests = %d, want %d", got, tc.wantTokens)
			}
			if got := len(srv.requests()); got != tc.wantReqs {
				t.Errorf("FHIR requests = %d, want %d", got, tc.wantReqs)
			}
		})
	}
}

func TestSendOAuth2TokenEndpointDown(t *testing.T) {
	ts := newTokenServer(t, 3600)
	tokenURL := ts.URL
	ts.Close()
	srv := newEHR(t, func(_ int, _ received, w http.ResponseWriter) { answer(w, http.StatusCreated, "") })
	d := newDest(t, fhir.DestinationConfig{URL: srv.URL, Auth: fhir.Auth{OAuth2: &fhir.OAuth2{TokenURL: tokenURL, ClientID: "osprey", ClientSecret: "sh"}}})
	_, err := d.Send(t.Context(), fhirMessage(patientJSON, nil))
	var re *fhir.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if len(srv.requests()) != 0 {
		t.Error("sent without a token")
	}
}

func TestNewDestinationChecks(t *testing.T) {
	tests := []struct {
		name string
		cfg  fhir.DestinationConfig
	}{
		{"no url", fhir.DestinationConfig{}},
		{"ftp url", fhir.DestinationConfig{URL: "ftp://x/fhir"}},
		{"two credentials", fhir.DestinationConfig{URL: "http://x", Auth: fhir.Auth{Token: "t", Username: "u"}}},
		{"oauth2 without client", fhir.DestinationConfig{URL: "http://x", Auth: fhir.Auth{OAuth2: &fhir.OAuth2{TokenURL: "http://x/token"}}}},
		{"unknown conditional", fhir.DestinationConfig{URL: "http://x", Conditional: "always"}},
		{"missing CA file", fhir.DestinationConfig{URL: "https://x", TLS: &fhir.ClientTLS{CAFile: "/nonexistent/ca.pem"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := fhir.NewDestination(tc.cfg, engine.Resources{}); err == nil {
				t.Error("NewDestination accepted it")
			}
		})
	}
}
