package admin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
)

func TestAuthMatrix(t *testing.T) {
	env := newEnv(t)
	routes := []struct {
		method, path string
		ok           int // status for a token allowed to call it
	}{
		{"GET", "/api/v1/channels", http.StatusOK},
		{"GET", "/api/v1/messages/m1", http.StatusOK},
		{"POST", "/api/v1/channels/adt/pause", http.StatusOK},
		{"POST", "/api/v1/reload", http.StatusOK},
	}
	tokens := []struct {
		name   string
		header string // the Authorization header; "" for none
		get    int    // status for a GET route allowed to the token
		post   int
	}{
		{"none", "", 401, 401},
		{"unknown", "Bearer not-a-token", 401, 401},
		{"prefix of a real token", "Bearer " + adminToken[:10], 401, 401},
		{"basic scheme", "Basic " + adminToken, 401, 401},
		{"empty bearer", "Bearer ", 401, 401},
		{"read", "Bearer " + readToken, 0, 403},
		{"admin", "Bearer " + adminToken, 0, 0},
		{"admin lower-case scheme", "bearer " + adminToken, 0, 0},
	}
	for _, rt := range routes {
		for _, tk := range tokens {
			t.Run(rt.method+" "+rt.path+"/"+tk.name, func(t *testing.T) {
				want := tk.get
				if rt.method == "POST" {
					want = tk.post
				}
				if want == 0 {
					want = rt.ok
				}
				req, _ := http.NewRequest(rt.method, rt.path, nil)
				if tk.header != "" {
					req.Header.Set("Authorization", tk.header)
				}
				rec := httptest.NewRecorder()
				env.srv.Handler().ServeHTTP(rec, req)
				r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
				if r.status != want {
					t.Fatalf("status = %d, want %d; body %s", r.status, want, r.body)
				}
				switch want {
				case 401:
					if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
					}
					wantError(t, r, 401, "token")
				case 403:
					wantError(t, r, 403, `role "read"`)
				}
			})
		}
	}

	t.Run("unknown api path without token is 401, not 404", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/no-such-thing", ""), 401, "missing bearer token")
	})
	t.Run("405 names the allowed method", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/reload", adminToken)
		wantError(t, r, 405, "method not allowed")
		if got := r.header.Get("Allow"); !strings.Contains(got, "POST") {
			t.Errorf("Allow = %q", got)
		}
	})
	t.Run("unknown token says invalid_token", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/channels", "wrong")
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate = %q, want invalid_token", got)
		}
	})
	t.Run("open routes need no token", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if r := env.call(t, "GET", p, ""); r.status != 200 {
				t.Errorf("GET %s = %d, want 200", p, r.status)
			}
		}
	})
	t.Run("a forbidden write never reaches the engine", func(t *testing.T) {
		before := len(env.eng.Calls())
		env.call(t, "POST", "/api/v1/reload", readToken)
		if got := env.eng.Calls()[before:]; len(got) != 0 {
			t.Errorf("engine calls after a 403: %v", got)
		}
	})
}

func TestNoTokensRefusesAPI(t *testing.T) {
	env := newEnv(t, func(o *admin.Options) { o.Tokens = nil })
	for _, tok := range []string{"", adminToken, "anything"} {
		t.Run("token="+tok, func(t *testing.T) {
			wantError(t, env.call(t, "GET", "/api/v1/channels", tok), 401, "")
		})
	}
	t.Run("healthz still answers", func(t *testing.T) {
		if r := env.call(t, "GET", "/healthz", ""); r.status != 200 {
			t.Fatalf("healthz = %d", r.status)
		}
	})
}

func TestUnusableTokensAreDropped(t *testing.T) {
	tests := []struct {
		name   string
		tokens []admin.Token
		reject string // a secret that must not authenticate
		accept string // a secret that still must
		errSub string // in Serve's error
	}{
		{"empty secret", []admin.Token{{Name: "a", Token: "", Role: "admin"}, {Name: "b", Token: adminToken, Role: "admin"}},
			"", adminToken, "empty secret"},
		{"unknown role", []admin.Token{{Name: "a", Token: "root-token-0123456789", Role: "root"}, {Name: "b", Token: readToken, Role: "read"}},
			"root-token-0123456789", readToken, `role "root"`},
		{"same secret twice", []admin.Token{{Name: "a", Token: readToken, Role: "read"}, {Name: "b", Token: readToken, Role: "admin"}},
			"", readToken, "same secret as token a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(o *admin.Options) { o.Tokens = tt.tokens })
			if tt.reject != "" {
				wantError(t, env.call(t, "GET", "/api/v1/channels", tt.reject), 401, "")
			}
			if r := env.call(t, "GET", "/api/v1/channels", tt.accept); r.status != 200 {
				t.Errorf("valid token: status %d", r.status)
			}
			// The duplicate must not have gained admin through the second entry.
			if tt.name == "same secret twice" {
				wantError(t, env.call(t, "POST", "/api/v1/reload", tt.accept), 403, "")
			}
			ln := listen(t)
			err := env.srv.Serve(context.Background(), ln, nil)
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("Serve = %v, want an error containing %q", err, tt.errSub)
			}
		})
	}
}

func TestChannels(t *testing.T) {
	type channelList struct {
		Channels []engine.ChannelStatus `json:"channels"`
	}
	t.Run("list sorted by name", func(t *testing.T) {
		env := newEnv(t)
		r := env.call(t, "GET", "/api/v1/channels", readToken)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		got := decode[channelList](t, r)
		var names []string
		for _, c := range got.Channels {
			names = append(names, c.Name)
		}
		if want := []string{"adt", "orders", "results"}; !slices.Equal(names, want) {
			t.Errorf("names = %v, want %v", names, want)
		}
		if got.Channels[0].Counters.Received != 12 || got.Channels[0].Destinations[0].DeadLetters != 1 {
			t.Errorf("adt = %+v, counters or destinations lost", got.Channels[0])
		}
		if !bytes.Contains(r.body, []byte(`"destinations":[]`)) {
			t.Errorf("a channel without destinations should list [], body %s", r.body)
		}
	})
	t.Run("list with no channels is an empty array", func(t *testing.T) {
		env := newEnv(t)
		env.eng.channels = nil
		r := env.call(t, "GET", "/api/v1/channels", readToken)
		if strings.TrimSpace(string(r.body)) != `{"channels":[]}` {
			t.Errorf("body = %s", r.body)
		}
	})

	tests := []struct {
		name       string
		method     string
		path       string
		controlErr error
		status     int
		wantBody   string // substring of the body
		wantCall   string // the engine call it must make ("" for none)
	}{
		{"get one", "GET", "/api/v1/channels/orders", nil, 200, `"state":"paused"`, ""},
		{"get escaped name", "GET", "/api/v1/channels/ord%65rs", nil, 200, `"name":"orders"`, ""},
		{"get unknown", "GET", "/api/v1/channels/nope", nil, 404, `channel \"nope\" not found`, ""},
		{"start", "POST", "/api/v1/channels/orders/start", nil, 200, `{"channel":"orders","action":"start","state":"running"}`, "control orders start"},
		{"stop", "POST", "/api/v1/channels/adt/stop", nil, 200, `"state":"stopped"`, "control adt stop"},
		{"pause", "POST", "/api/v1/channels/adt/pause", nil, 200, `"state":"paused"`, "control adt pause"},
		{"control unknown channel", "POST", "/api/v1/channels/nope/stop", nil, 404, "unknown channel", "control nope stop"},
		{"engine says bad request", "POST", "/api/v1/channels/adt/stop",
			fmt.Errorf("engine: channel adt is failed: %w", engine.ErrBadRequest), 400, "channel adt is failed", "control adt stop"},
		{"engine fails", "POST", "/api/v1/channels/adt/stop", errBoom, 500, `"error":"internal server error"`, "control adt stop"},
		{"unknown action", "POST", "/api/v1/channels/adt/restart", nil, 404, `"status":404`, ""},
		{"GET on a POST route", "GET", "/api/v1/channels/adt/stop", nil, 405, `"error":"method not allowed"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.eng.controlErr = tt.controlErr
			r := env.call(t, tt.method, tt.path, adminToken)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if !strings.Contains(string(r.body), tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", r.body, tt.wantBody)
			}
			calls := env.eng.Calls()
			if tt.wantCall == "" && len(calls) > 0 || tt.wantCall != "" && !slices.Equal(calls, []string{tt.wantCall}) {
				t.Errorf("engine calls = %v, want [%s]", calls, tt.wantCall)
			}
		})
	}
}

func TestSearchMessages(t *testing.T) {
	type page struct {
		Messages []map[string]any `json:"messages"`
		Next     string           `json:"next"`
	}
	ids := func(p page) []string {
		var out []string
		for _, m := range p.Messages {
			out = append(out, m["id"].(string))
		}
		return out
	}
	env := newEnv(t)
	tests := []struct {
		name   string
		query  string
		want   []string    // ids, newest first
		stored store.Query // what must reach the store (Limit and Cursor included)
	}{
		{"everything", "", []string{"m5", "m4", "m3", "m2", "m1"}, store.Query{}},
		{"channel", "channel=orders", []string{"m4", "m3"}, store.Query{Channel: "orders"}},
		{"status", "status=sent", []string{"m5", "m1"}, store.Query{Status: store.StatusSent}},
		{"type prefix", "type=ADT", []string{"m2", "m1"}, store.Query{MessageType: "ADT"}},
		{"full type escaped", "type=ADT%5EA08", []string{"m2"}, store.Query{MessageType: "ADT^A08"}},
		{"control id", "control_id=C3", []string{"m3"}, store.Query{ControlID: "C3"}},
		{"patient", "patient_id=P1", []string{"m5", "m3", "m1"}, store.Query{PatientID: "P1"}},
		{"accession", "accession=ACC4", []string{"m4"}, store.Query{Accession: "ACC4"}},
		{"sender", "sender=LAB%5EHOSP", []string{"m4"}, store.Query{Sender: "LAB^HOSP"}},
		{"free text", "q=head+ct", []string{"m3"}, store.Query{Text: "head ct"}},
		{"time window", "from=2026-03-04T10:02:00Z&to=2026-03-04T10:04:00Z", []string{"m3", "m2"},
			store.Query{From: base.Add(2 * time.Minute), To: base.Add(4 * time.Minute)}},
		{"time with offset", "from=2026-03-04T11:04:00%2B01:00", []string{"m5", "m4"},
			store.Query{From: base.Add(4 * time.Minute)}},
		{"combined", "channel=adt&patient_id=P2&limit=10", []string{"m2"}, store.Query{Channel: "adt", PatientID: "P2", Limit: 10}},
		{"no match", "channel=adt&accession=ACC3", nil, store.Query{Channel: "adt", Accession: "ACC3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.call(t, "GET", "/api/v1/messages?"+tt.query, readToken)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			p := decode[page](t, r)
			if got := ids(p); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if got := env.store.query(); !queryEqual(got, tt.stored) {
				t.Errorf("store query = %+v, want %+v", got, tt.stored)
			}
			if p.Messages == nil {
				t.Errorf("messages is null, want [] (body %s)", r.body)
			}
			for _, m := range p.Messages {
				if _, ok := m["raw"]; ok {
					t.Errorf("search result %v carries the raw body", m["id"])
				}
				if _, ok := m["raw_base64"]; ok {
					t.Errorf("search result %v carries the raw body", m["id"])
				}
			}
		})
	}

	bad := []struct {
		name, query, param string
	}{
		{"unknown status", "status=done", "parameter status"},
		{"limit zero", "limit=0", "parameter limit"},
		{"limit too large", "limit=1001", "parameter limit"},
		{"limit not a number", "limit=ten", "parameter limit"},
		{"from not RFC 3339", "from=2026-03-04", "parameter from"},
		{"to not RFC 3339", "to=yesterday", "parameter to"},
		{"to before from", "from=2026-03-04T10:00:00Z&to=2026-03-04T09:00:00Z", "parameter to"},
		{"unknown parameter", "patient=P1", "parameter patient: unknown parameter"},
		{"repeated parameter", "channel=adt&channel=orders", "parameter channel: given 2 times"},
		{"cursor from nowhere", "cursor=bm9wZQ", "parameter cursor"},
		{"malformed query", "channel=%zz", "malformed query"},
	}
	for _, tt := range bad {
		t.Run("400/"+tt.name, func(t *testing.T) {
			wantError(t, env.call(t, "GET", "/api/v1/messages?"+tt.query, readToken), 400, tt.param)
		})
	}

	t.Run("store failure is a generic 500 and the detail is logged", func(t *testing.T) {
		env := newEnv(t)
		env.store.searchErr = errBoom
		r := env.call(t, "GET", "/api/v1/messages", readToken)
		wantError(t, r, 500, "internal server error")
		if bytes.Contains(r.body, []byte("disk on fire")) {
			t.Errorf("500 body leaks the cause: %s", r.body)
		}
		if !strings.Contains(env.logs.String(), "disk on fire") {
			t.Errorf("the cause is not in the log:\n%s", env.logs)
		}
	})
}

// queryEqual compares queries with time.Time.Equal, since parsed times carry their zone.
func queryEqual(a, b store.Query) bool {
	if !a.From.Equal(b.From) || !a.To.Equal(b.To) {
		return false
	}
	a.From, a.To, b.From, b.To = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func TestPagination(t *testing.T) {
	env := newEnv(t)
	t.Run("messages", func(t *testing.T) {
		type page struct {
			Messages []map[string]any `json:"messages"`
			Next     string           `json:"next"`
		}
		var got []string
		target := "/api/v1/messages?limit=2"
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("more pages than messages; ids so far %v", got)
			}
			p := decode[page](t, env.call(t, "GET", target, readToken))
			if len(p.Messages) > 2 {
				t.Fatalf("page of %d with limit=2", len(p.Messages))
			}
			for _, m := range p.Messages {
				got = append(got, m["id"].(string))
			}
			if p.Next == "" {
				break
			}
			if q := env.store.query(); q.Limit != 2 {
				t.Errorf("store limit = %d, want 2", q.Limit)
			}
			target = "/api/v1/messages?limit=2&cursor=" + url.QueryEscape(p.Next)
		}
		if want := []string{"m5", "m4", "m3", "m2", "m1"}; !slices.Equal(got, want) {
			t.Errorf("walked ids = %v, want %v", got, want)
		}
	})
	t.Run("dead letters", func(t *testing.T) {
		type page struct {
			DeadLetters []store.Delivery `json:"dead_letters"`
			Next        string           `json:"next"`
		}
		p1 := decode[page](t, env.call(t, "GET", "/api/v1/deadletters?limit=1", readToken))
		if len(p1.DeadLetters) != 1 || p1.Next == "" {
			t.Fatalf("first page = %+v, want one row and a next cursor", p1)
		}
		p2 := decode[page](t, env.call(t, "GET", "/api/v1/deadletters?limit=1&cursor="+url.QueryEscape(p1.Next), readToken))
		if len(p2.DeadLetters) != 1 || p2.Next != "" {
			t.Fatalf("second page = %+v, want the last row and no cursor", p2)
		}
		if got := []string{p1.DeadLetters[0].MessageID, p2.DeadLetters[0].MessageID}; !slices.Equal(got, []string{"m3", "m2"}) {
			t.Errorf("dead letters = %v, want newest first [m3 m2]", got)
		}
	})
}

func TestGetMessage(t *testing.T) {
	env := newEnv(t)
	type detail struct {
		Message    map[string]any   `json:"message"`
		Stages     []map[string]any `json:"stages"`
		Attempts   []map[string]any `json:"attempts"`
		Deliveries []store.Delivery `json:"deliveries"`
	}
	t.Run("text body, stages, attempts, deliveries", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/messages/m1", readToken)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		d := decode[detail](t, r)
		raw, _ := d.Message["raw"].(string)
		if !strings.HasPrefix(raw, "MSH|^~\\&|RIS|HOSP") || !strings.Contains(raw, "\rPID|1||P1") {
			t.Errorf("raw = %q, want the HL7 text with its \\r separators", raw)
		}
		if _, ok := d.Message["raw_base64"]; ok {
			t.Error("raw_base64 set for a UTF-8 body")
		}
		if d.Message["size"] != float64(len(raw)) {
			t.Errorf("size = %v, want %d", d.Message["size"], len(raw))
		}
		if d.Message["control_id"] != "C1" || d.Message["status"] != "sent" || d.Message["sender"] != "RIS^HOSP" {
			t.Errorf("message fields = %v", d.Message)
		}
		if len(d.Stages) != 2 || d.Stages[1]["name"] != "transform[0] set" || d.Stages[1]["output"] != "MSH|^~\\&|OSPREY|HOSP\r" {
			t.Errorf("stages = %v", d.Stages)
		}
		if len(d.Attempts) != 1 {
			t.Fatalf("attempts = %v", d.Attempts)
		}
		a := d.Attempts[0]
		if a["ok"] != true || a["reply_summary"] != "AA" || a["duration_ms"] != 1.5 || !strings.Contains(a["reply"].(string), "MSA|AA|C1") {
			t.Errorf("attempt = %v", a)
		}
		if len(d.Deliveries) != 1 || d.Deliveries[0].Destination != "ehr" || d.Deliveries[0].Status != store.DeliverySent {
			t.Errorf("deliveries = %+v", d.Deliveries)
		}
	})
	t.Run("binary bodies are base64", func(t *testing.T) {
		d := decode[detail](t, env.call(t, "GET", "/api/v1/messages/m4", readToken))
		if _, ok := d.Message["raw"]; ok {
			t.Error("raw set for a body that is not UTF-8")
		}
		b, err := base64.StdEncoding.DecodeString(d.Message["raw_base64"].(string))
		if err != nil || !bytes.HasSuffix(b, []byte("Ren\xe9e\r")) {
			t.Errorf("raw_base64 decodes to %q, %v", b, err)
		}
		d3 := decode[detail](t, env.call(t, "GET", "/api/v1/messages/m3", readToken))
		if d3.Attempts[0]["reply_base64"] != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 'A', 'E'}) {
			t.Errorf("reply = %v", d3.Attempts[0])
		}
	})
	t.Run("a message without stages lists []", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/messages/m5", readToken)
		if !bytes.Contains(r.body, []byte(`"stages":[]`)) || !bytes.Contains(r.body, []byte(`"deliveries":[]`)) {
			t.Errorf("body = %s", r.body)
		}
	})
	t.Run("missing is 404 naming the id", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/messages/nope", readToken), 404, `message "nope" not found`)
	})
	t.Run("parameters are refused", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/messages/m1?raw=0", readToken), 400, "parameter raw")
	})
}

func TestReprocess(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"accepted", nil, 202, `{"id":"m1-r1","reprocess_of":"m1"}`},
		{"missing in store", fmt.Errorf("reprocess m1: %w", store.ErrNotFound), 404, `message \"m1\" not found`},
		{"missing in engine", fmt.Errorf("reprocess m1: %w", engine.ErrNotFound), 404, `message \"m1\" not found`},
		{"engine failure", errBoom, 500, "internal server error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.eng.reprocessErr = tt.err
			r := env.call(t, "POST", "/api/v1/messages/m1/reprocess", adminToken)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tt.status, tt.want)
			}
			if got := env.eng.Calls(); !slices.Equal(got, []string{"reprocess m1"}) {
				t.Errorf("engine calls = %v", got)
			}
		})
	}
}

func TestDeadLetters(t *testing.T) {
	type page struct {
		DeadLetters []store.Delivery `json:"dead_letters"`
		Next        string           `json:"next"`
	}
	list := []struct {
		name, query string
		want        []string // message id/destination
	}{
		{"all", "", []string{"m3/ris", "m2/ehr"}},
		{"channel", "channel=adt", []string{"m2/ehr"}},
		{"destination", "destination=ris", []string{"m3/ris"}},
		{"none", "channel=results", nil},
	}
	env := newEnv(t)
	for _, tt := range list {
		t.Run("list/"+tt.name, func(t *testing.T) {
			r := env.call(t, "GET", "/api/v1/deadletters?"+tt.query, readToken)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			p := decode[page](t, r)
			var got []string
			for _, d := range p.DeadLetters {
				got = append(got, d.MessageID+"/"+d.Destination)
				if d.Status != store.DeliveryDeadLetter {
					t.Errorf("%s status = %s", d.MessageID, d.Status)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("dead letters = %v, want %v", got, tt.want)
			}
			if bytes.Contains(r.body, []byte("payload")) {
				t.Errorf("payload leaked into the list: %s", r.body)
			}
		})
	}
	t.Run("list/empty is []", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/deadletters?channel=results", readToken)
		if strings.TrimSpace(string(r.body)) != `{"dead_letters":[]}` {
			t.Errorf("body = %s", r.body)
		}
	})
	for _, q := range []string{"limit=-1", "status=dead_letter", "cursor=xyz"} {
		t.Run("list/400 "+q, func(t *testing.T) {
			wantError(t, env.call(t, "GET", "/api/v1/deadletters?"+q, readToken), 400, "parameter "+strings.Split(q, "=")[0])
		})
	}

	requeue := []struct {
		name   string
		target string
		err    error
		status int
		want   string
		call   string
	}{
		{"every destination", "/api/v1/deadletters/m2/requeue", nil, 202, `{"id":"m2","status":"requeued"}`, `requeue m2 ""`},
		{"one destination", "/api/v1/deadletters/m2/requeue?destination=ehr", nil, 202,
			`{"id":"m2","destination":"ehr","status":"requeued"}`, `requeue m2 "ehr"`},
		{"not dead lettered", "/api/v1/deadletters/m1/requeue", fmt.Errorf("engine: message m1 has no dead letter: %w", engine.ErrBadRequest),
			400, "has no dead letter", `requeue m1 ""`},
		{"missing", "/api/v1/deadletters/zz/requeue", fmt.Errorf("engine: message zz: %w", store.ErrNotFound), 404, "message zz", `requeue zz ""`},
		{"unknown parameter", "/api/v1/deadletters/m2/requeue?dest=ehr", nil, 400, "parameter dest", ""},
	}
	for _, tt := range requeue {
		t.Run("requeue/"+tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.eng.requeueErr = tt.err
			r := env.call(t, "POST", tt.target, adminToken)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tt.status, tt.want)
			}
			calls := env.eng.Calls()
			if tt.call == "" && len(calls) != 0 || tt.call != "" && !slices.Equal(calls, []string{tt.call}) {
				t.Errorf("engine calls = %v, want [%s]", calls, tt.call)
			}
		})
	}
}

func TestReload(t *testing.T) {
	lints := []spec.Lint{
		{File: "channels/adt.yaml", Line: 3, Col: 5, Level: spec.LevelError, Type: spec.LintUnknownField, Msg: `unknown field "prot"`},
		{File: "channels/adt.yaml", Line: 9, Col: 12, Level: spec.LevelError, Type: spec.LintExpr, Msg: "unknown name PID"},
	}
	t.Run("ok", func(t *testing.T) {
		env := newEnv(t)
		r := env.call(t, "POST", "/api/v1/reload", adminToken)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"reloaded"}` {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if got := env.eng.Calls(); !slices.Equal(got, []string{"reload"}) {
			t.Errorf("engine calls = %v", got)
		}
	})
	t.Run("invalid config is 422 with lints", func(t *testing.T) {
		env := newEnv(t)
		env.eng.reloadErr = fmt.Errorf("engine: reload: %w", &engine.ConfigError{Lints: lints})
		b := wantError(t, env.call(t, "POST", "/api/v1/reload", adminToken), 422, "running configuration is unchanged")
		if len(b.Lints) != 2 {
			t.Fatalf("lints = %+v", b.Lints)
		}
		l := b.Lints[0]
		if l.Text != `channels/adt.yaml:3:5: unknown field "prot"` || l.File != "channels/adt.yaml" || l.Line != 3 || l.Col != 5 ||
			l.Type != "unknown_field" || l.Level != "error" || l.Message != `unknown field "prot"` {
			t.Errorf("lint = %+v", l)
		}
		if b.Lints[1].Text != "channels/adt.yaml:9:12: unknown name PID" {
			t.Errorf("second lint = %+v", b.Lints[1])
		}
	})
	t.Run("config error without lints still lists []", func(t *testing.T) {
		env := newEnv(t)
		env.eng.reloadErr = &engine.ConfigError{}
		r := env.call(t, "POST", "/api/v1/reload", adminToken)
		if r.status != 422 || !bytes.Contains(r.body, []byte(`"lints":[]`)) {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("other failure is 500", func(t *testing.T) {
		env := newEnv(t)
		env.eng.reloadErr = errBoom
		wantError(t, env.call(t, "POST", "/api/v1/reload", adminToken), 500, "internal server error")
	})
}

func TestProbesAndVersion(t *testing.T) {
	t.Run("healthz", func(t *testing.T) {
		env := newEnv(t)
		env.eng.readyErr = errBoom // liveness does not depend on readiness
		r := env.call(t, "GET", "/healthz", "")
		if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("readyz ok", func(t *testing.T) {
		env := newEnv(t)
		r := env.call(t, "GET", "/readyz", "")
		if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ready"}` {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("readyz failing", func(t *testing.T) {
		env := newEnv(t)
		env.eng.readyErr = fmt.Errorf("nats: no servers available")
		wantError(t, env.call(t, "GET", "/readyz", ""), 503, "not ready: nats: no servers available")
		if strings.Contains(env.logs.String(), `"level":"ERROR"`) {
			t.Errorf("a failing probe is logged as an error; probes would flood the log:\n%s", env.logs)
		}
	})
	t.Run("version", func(t *testing.T) {
		env := newEnv(t)
		v := decode[map[string]string](t, env.call(t, "GET", "/api/v1/version", readToken))
		if v["version"] != "v1.2.3-test" || !strings.HasPrefix(v["go"], "go") || v["os"] == "" || v["arch"] == "" {
			t.Errorf("version = %v", v)
		}
	})
}

func TestMetrics(t *testing.T) {
	env := newEnv(t)
	env.metrics.Received.WithLabelValues("adt", "accepted").Add(3)
	r := env.call(t, "GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if !strings.Contains(string(r.body), `osprey_messages_received_total{channel="adt",verdict="accepted"} 3`) {
		t.Errorf("exposition lacks the osprey counter:\n%.2000s", r.body)
	}
	if !strings.Contains(string(r.body), "go_goroutines") {
		t.Error("exposition lacks the Go collector")
	}

	t.Run("no gatherer, no route", func(t *testing.T) {
		env := newEnv(t, func(o *admin.Options) { o.Gatherer = nil })
		wantError(t, env.call(t, "GET", "/metrics", ""), 404, "not found")
	})
}

func TestRobustness(t *testing.T) {
	t.Run("panic is a 500 and the server goes on", func(t *testing.T) {
		env := newEnv(t)
		env.eng.panicOn = "Control"
		wantError(t, env.call(t, "POST", "/api/v1/channels/adt/stop", adminToken), 500, "internal server error")
		if !strings.Contains(env.logs.String(), "control exploded") {
			t.Errorf("panic not logged:\n%s", env.logs)
		}
		env.eng.panicOn = ""
		if r := env.call(t, "POST", "/api/v1/channels/adt/stop", adminToken); r.status != 200 {
			t.Errorf("after a panic: %d %s", r.status, r.body)
		}
	})
	t.Run("body over the limit is 413", func(t *testing.T) {
		env := newEnv(t, func(o *admin.Options) { o.MaxBodyBytes = 1024 })
		r := env.callBody(t, "POST", "/api/v1/reload", adminToken, bytes.NewReader(make([]byte, 4096)))
		wantError(t, r, 413, "request entity too large")
		if calls := env.eng.Calls(); len(calls) != 0 {
			t.Errorf("engine was called: %v", calls)
		}
	})
	t.Run("answers are not cached", func(t *testing.T) {
		env := newEnv(t)
		r := env.call(t, "GET", "/api/v1/messages/m1", readToken)
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers = %v", r.header)
		}
	})
}

func TestRequestLog(t *testing.T) {
	env := newEnv(t)
	env.call(t, "GET", "/api/v1/messages?patient_id=SECRET-MRN-77", readToken)
	env.call(t, "GET", "/api/v1/messages/nope", readToken)
	logs := env.logs.String()
	for _, want := range []string{`"method":"GET"`, `"path":"/api/v1/messages"`, `"status":200`, `"status":404`, `"duration":`, `"token":"dashboard"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	for _, leak := range []string{"SECRET-MRN-77", readToken, "MSH|"} {
		if strings.Contains(logs, leak) {
			t.Errorf("log contains %q:\n%s", leak, logs)
		}
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"unknown channel", fmt.Errorf("x: %w", engine.ErrUnknownChannel), 404},
		{"engine not found", fmt.Errorf("x: %w", engine.ErrNotFound), 404},
		{"store not found", fmt.Errorf("x: %w", store.ErrNotFound), 404},
		{"bad request", fmt.Errorf("x: %w", engine.ErrBadRequest), 400},
		{"invalid cursor", fmt.Errorf("x: %w", store.ErrInvalidCursor), 400},
		{"config", fmt.Errorf("x: %w", &engine.ConfigError{}), 422},
		{"api error", &admin.Error{Status: 409, Message: "conflict"}, 409},
		{"wrapped api error", fmt.Errorf("x: %w", &admin.Error{Status: 418, Message: "teapot"}), 418},
		{"other", errBoom, 500},
		{"cancelled", context.Canceled, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := admin.StatusOf(tt.err)
			if ae.Status != tt.status {
				t.Errorf("status = %d, want %d", ae.Status, tt.status)
			}
			if tt.status == 500 && strings.Contains(ae.Message, "fire") {
				t.Errorf("500 message leaks the cause: %q", ae.Message)
			}
		})
	}
}
