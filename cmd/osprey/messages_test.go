package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

const (
	apiTestAdmin = "cli-admin-token-0123456789"
	apiTestRead  = "cli-read-token-0123456789"
)

// apiTestEngine is the engine behind the admin API in these tests: it records requeue and
// reprocess calls and answers reload with the error a test sets.
type apiTestEngine struct {
	mu        sync.Mutex
	calls     []string
	reloadErr error
}

func (e *apiTestEngine) record(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, s)
}

func (e *apiTestEngine) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func (e *apiTestEngine) Channels() []engine.ChannelStatus              { return nil }
func (e *apiTestEngine) Control(context.Context, string, string) error { return nil }
func (e *apiTestEngine) Ready(context.Context) error                   { return nil }
func (e *apiTestEngine) Reprocess(_ context.Context, id string) (string, error) {
	e.record("reprocess " + id)
	return id + "-again", nil
}
func (e *apiTestEngine) Requeue(_ context.Context, id, dest string) error {
	e.record(fmt.Sprintf("requeue %s %q", id, dest))
	return nil
}
func (e *apiTestEngine) Reload(context.Context) error {
	e.record("reload")
	return e.reloadErr
}

var apiTestBase = time.Date(2026, 5, 6, 8, 0, 0, 0, time.UTC)

// newAPITestServer runs a real admin API over an in-memory SQLite store holding three
// messages (m1 oldest) and one dead letter (m2 to "ris").
func newAPITestServer(t *testing.T) (*httptest.Server, *apiTestEngine) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Memory, sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	msgs := []store.Message{
		{ID: "m1", Channel: "adt", ContentType: engine.ContentHL7v2, ReceivedAt: apiTestBase.Add(time.Minute),
			Raw:       []byte("MSH|^~\\&|RIS|HOSP|||20260506||ADT^A01|CTL1|P|2.5\rPID|1||MRN1^^^HOSP||DOE^JANE\r"),
			ControlID: "CTL1", MessageType: "ADT^A01", PatientID: "MRN1", Sender: "RIS^HOSP", Status: store.StatusSent},
		{ID: "m2", Channel: "orders", ContentType: engine.ContentHL7v2, ReceivedAt: apiTestBase.Add(2 * time.Minute),
			Raw:       []byte("MSH|^~\\&|RIS|HOSP|||20260506||ORM^O01|CTL2|P|2.5\rPID|1||MRN2\rOBR|1|||CTHEAD^HEAD CT\r"),
			ControlID: "CTL2", MessageType: "ORM^O01", PatientID: "MRN2", Accession: "ACC2", Status: store.StatusQueued},
		{ID: "m3", Channel: "adt", ContentType: engine.ContentHL7v2, ReceivedAt: apiTestBase.Add(3 * time.Minute),
			Raw:       []byte("MSH|^~\\&|LAB|HOSP\rPID|1||MRN1||Ren\xe9e\x1b[2J\r"),
			ControlID: "CTL3", MessageType: "ADT^A08", PatientID: "MRN1", Status: store.StatusRejected, Error: "PID-5 not UTF-8"},
	}
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if err := st.AddStages(ctx, "m1", []store.Stage{{Seq: 1, Name: "filter", At: apiTestBase.Add(61 * time.Second)}}); err != nil {
		t.Fatalf("seed stages: %v", err)
	}
	if err := st.PutDeliveries(ctx, []store.Delivery{
		{MessageID: "m1", Channel: "adt", Destination: "ehr", Status: store.DeliveryQueued, UpdatedAt: apiTestBase, Payload: []byte("p")},
		{MessageID: "m2", Channel: "orders", Destination: "ris", Status: store.DeliveryQueued, UpdatedAt: apiTestBase, Payload: []byte("p")},
	}); err != nil {
		t.Fatalf("seed deliveries: %v", err)
	}
	for _, a := range []struct {
		id string
		a  store.Attempt
		s  store.DeliveryStatus
	}{
		{"m1", store.Attempt{Destination: "ehr", Number: 1, At: apiTestBase.Add(62 * time.Second), Duration: 2500 * time.Microsecond,
			OK: true, ReplySummary: "AA"}, store.DeliverySent},
		{"m2", store.Attempt{Destination: "ris", Number: 1, At: apiTestBase.Add(121 * time.Second), Duration: time.Second,
			Error: "dial tcp: connection refused"}, store.DeliveryDeadLetter},
	} {
		if err := st.AddAttempt(ctx, a.id, a.a, a.s); err != nil {
			t.Fatalf("seed attempt: %v", err)
		}
	}
	eng := &apiTestEngine{}
	srv := admin.New(admin.Options{
		Engine: eng, Store: st, Version: "test",
		Tokens: []admin.Token{{Name: "ops", Token: apiTestAdmin, Role: admin.RoleAdmin}, {Name: "ro", Token: apiTestRead, Role: admin.RoleRead}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, eng
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runTestCLI(args ...string) cliResult {
	var out, errb bytes.Buffer
	code := runCLI(context.Background(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// tableIDs returns the second column of a table's rows, the header left out.
func tableIDs(out string) []string {
	var ids []string
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 1 {
			ids = append(ids, f[1])
		}
	}
	return ids
}

func TestMessagesSearchCommand(t *testing.T) {
	ts, _ := newAPITestServer(t)
	t.Setenv("OSPREY_API", "")
	t.Setenv("OSPREY_TOKEN", "")
	api := []string{"--api", ts.URL, "--token", apiTestRead}
	tests := []struct {
		name  string
		flags []string
		want  []string
	}{
		{"everything", nil, []string{"m3", "m2", "m1"}},
		{"channel", []string{"--channel", "adt"}, []string{"m3", "m1"}},
		{"status", []string{"--status", "error"}, []string{"m2"}}, // its delivery dead-lettered
		{"type prefix", []string{"--type", "ADT"}, []string{"m3", "m1"}},
		{"control id", []string{"--control-id", "CTL2"}, []string{"m2"}},
		{"patient", []string{"--patient", "MRN1"}, []string{"m3", "m1"}},
		{"accession", []string{"--accession", "ACC2"}, []string{"m2"}},
		{"sender", []string{"--sender", "RIS^HOSP"}, []string{"m1"}},
		{"text", []string{"--text", "head ct"}, []string{"m2"}},
		{"from and to", []string{"--from", "2026-05-06T08:01:30Z", "--to", "2026-05-06T08:02:30Z"}, []string{"m2"}},
		{"single-dash flags", []string{"-patient", "MRN2"}, []string{"m2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runTestCLI(append(append([]string{"messages", "search"}, api...), tt.flags...)...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stdout, "TIME") || !strings.Contains(strings.SplitN(r.stdout, "\n", 2)[0], "CONTROL ID") {
				t.Errorf("no table header:\n%s", r.stdout)
			}
			if got := tableIDs(r.stdout); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v\n%s", got, tt.want, r.stdout)
			}
		})
	}

	t.Run("row content", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "search", "--control-id", "CTL1"}, api...)...)
		row := strings.Fields(strings.Split(r.stdout, "\n")[1])
		if want := []string{"2026-05-06T08:01:00Z", "m1", "adt", "ADT^A01", "CTL1", "sent"}; !slices.Equal(row, want) {
			t.Errorf("row = %v, want %v", row, want)
		}
	})
	t.Run("pages", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "search", "--limit", "2"}, api...)...)
		if got := tableIDs(r.stdout); !slices.Equal(got, []string{"m3", "m2"}) {
			t.Fatalf("first page = %v", got)
		}
		_, cursor, ok := strings.Cut(strings.TrimSpace(r.stderr), "more: add --cursor ")
		if !ok || cursor == "" {
			t.Fatalf("no cursor hint in stderr %q", r.stderr)
		}
		r = runTestCLI(append([]string{"messages", "search", "--limit", "2", "--cursor", cursor}, api...)...)
		if got := tableIDs(r.stdout); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("second page = %v", got)
		}
		if strings.Contains(r.stderr, "more:") {
			t.Errorf("last page still offers more: %q", r.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "search", "--json", "--channel", "orders"}, api...)...)
		var page struct {
			Messages []struct{ ID string } `json:"messages"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Messages) != 1 || page.Messages[0].ID != "m2" {
			t.Errorf("json = %s (%v)", r.stdout, err)
		}
	})
	t.Run("environment supplies URL and token", func(t *testing.T) {
		t.Setenv("OSPREY_API", ts.URL)
		t.Setenv("OSPREY_TOKEN", apiTestRead)
		r := runTestCLI("messages", "search", "--status", "rejected")
		if r.code != 0 || !slices.Equal(tableIDs(r.stdout), []string{"m3"}) {
			t.Errorf("exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("API refuses a parameter", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "search", "--status", "done"}, api...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "400 parameter status") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
	t.Run("bad time is refused before calling", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "search", "--from", "last tuesday"}, api...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "--from") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
	t.Run("no token", func(t *testing.T) {
		r := runTestCLI("messages", "search", "--api", ts.URL)
		if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "OSPREY_TOKEN") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
	t.Run("server not running", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r := runTestCLI("messages", "search", "--api", "http://"+addr, "--token", "x")
		if r.code != 1 || !strings.Contains(r.stderr, "is osprey serve running") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		r := runTestCLI("messages", "search", "--api", "localhost:8080")
		if r.code != 1 || !strings.Contains(r.stderr, "want http://host:port") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
	t.Run("help never shows the token from the environment", func(t *testing.T) {
		t.Setenv("OSPREY_TOKEN", "very-secret-value")
		r := runTestCLI("messages", "search", "-h")
		if r.code != 0 || strings.Contains(r.stderr+r.stdout, "very-secret-value") || !strings.Contains(r.stderr, "-patient") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
}

func TestMessagesShowCommand(t *testing.T) {
	ts, eng := newAPITestServer(t)
	api := []string{"--api", ts.URL, "--token", apiTestRead}
	t.Run("human readable", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "show", "m1"}, api...)...)
		if r.code != 0 {
			t.Fatalf("exit %d stderr %s", r.code, r.stderr)
		}
		for _, want := range []string{
			"message       m1", "control id    CTL1", "type          ADT^A01", "status        sent",
			"\n  MSH|^~\\&|RIS|HOSP|||20260506||ADT^A01|CTL1|P|2.5\n  PID|1||MRN1^^^HOSP||DOE^JANE\n",
			"stages (1):", "1  2026-05-06T08:01:01Z  filter",
			"attempts (1):", "ehr #1  2026-05-06T08:01:02Z  2.5ms  ok  AA",
			"deliveries (1):", "ehr  sent  1 attempt",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.TrimRight(line, " ") != line {
				t.Errorf("trailing blanks in %q", line)
			}
		}
	})
	t.Run("binary and control characters are escaped", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "show", "m3"}, api...)...)
		if !strings.Contains(r.stdout, `PID|1||MRN1||Ren\xE9e\x1B[2J`) {
			t.Errorf("body not escaped:\n%s", r.stdout)
		}
		if strings.ContainsRune(r.stdout, 0x1b) {
			t.Error("an escape character reached the terminal")
		}
	})
	t.Run("json after the id", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "show", "m2", "--json"}, api...)...)
		var d struct {
			Message    struct{ ID, Raw string }
			Deliveries []struct{ Status string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.Message.ID != "m2" || !strings.Contains(d.Message.Raw, "HEAD CT") ||
			len(d.Deliveries) != 1 || d.Deliveries[0].Status != "dead_letter" {
			t.Errorf("json = %s (%v)", r.stdout, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "show", "nope"}, api...)...)
		if r.code != 1 || !strings.Contains(r.stderr, `404 message "nope" not found`) {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
	})
	t.Run("no id is a usage error", func(t *testing.T) {
		if r := runTestCLI(append([]string{"messages", "show"}, api...)...); r.code != 2 {
			t.Errorf("exit %d", r.code)
		}
	})
	t.Run("reprocess needs admin", func(t *testing.T) {
		r := runTestCLI(append([]string{"messages", "reprocess", "m1"}, api...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "403") {
			t.Errorf("exit %d stderr %s", r.code, r.stderr)
		}
		r = runTestCLI("messages", "reprocess", "m1", "--api", ts.URL, "--token", apiTestAdmin)
		if r.code != 0 || r.stdout != "reprocessing m1 as m1-again\n" {
			t.Errorf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
		}
		if got := eng.Calls(); !slices.Equal(got, []string{"reprocess m1"}) {
			t.Errorf("engine calls = %v", got)
		}
	})
}

func TestDeadLettersCommands(t *testing.T) {
	ts, eng := newAPITestServer(t)
	api := []string{"--api", ts.URL, "--token", apiTestAdmin}
	t.Run("list", func(t *testing.T) {
		r := runTestCLI(append([]string{"deadletters", "list"}, api...)...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "UPDATED") {
			t.Fatalf("exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"m2", "orders", "ris", "1", "dial tcp: connection refused"} {
			if !strings.Contains(lines[1], want) {
				t.Errorf("row %q lacks %q", lines[1], want)
			}
		}
	})
	t.Run("list filtered to nothing", func(t *testing.T) {
		r := runTestCLI(append([]string{"deadletters", "list", "--channel", "adt"}, api...)...)
		if r.code != 0 || len(tableIDs(r.stdout)) != 0 || !strings.Contains(r.stderr, "no dead letters") {
			t.Errorf("exit %d stdout %s stderr %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("requeue", func(t *testing.T) {
		r := runTestCLI(append([]string{"deadletters", "requeue", "m2", "--destination", "ris"}, api...)...)
		if r.code != 0 || r.stdout != "requeued m2 to ris\n" {
			t.Errorf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
		}
		r = runTestCLI(append([]string{"deadletters", "requeue", "m2"}, api...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "every dead-lettered destination") {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
		if got := eng.Calls(); !slices.Equal(got, []string{`requeue m2 "ris"`, `requeue m2 ""`}) {
			t.Errorf("engine calls = %v", got)
		}
	})
}

func TestReloadCommand(t *testing.T) {
	ts, eng := newAPITestServer(t)
	api := []string{"--api", ts.URL, "--token", apiTestAdmin}
	r := runTestCLI(append([]string{"reload"}, api...)...)
	if r.code != 0 || r.stdout != "configuration reloaded\n" {
		t.Fatalf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}

	eng.reloadErr = &engine.ConfigError{Lints: []spec.Lint{
		{File: "osprey.yaml", Line: 4, Col: 7, Level: spec.LevelError, Type: spec.LintUnknownField, Msg: `unknown field "lisen"`},
		{File: "channels/adt.yaml", Line: 12, Col: 3, Level: spec.LevelError, Type: spec.LintExpr, Msg: "unknown name Modality"},
	}}
	r = runTestCLI(append([]string{"reload"}, api...)...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	want := "osprey.yaml:4:7: unknown field \"lisen\"\nchannels/adt.yaml:12:3: unknown name Modality\n" +
		"osprey reload: invalid configuration; the running configuration is unchanged\n"
	if r.stderr != want {
		t.Errorf("stderr =\n%s\nwant\n%s", r.stderr, want)
	}

	r = runTestCLI("reload", "--api", ts.URL, "--token", apiTestRead)
	if r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Errorf("read token: exit %d stderr %s", r.code, r.stderr)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	local := func(s string) string {
		tm, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Format(time.RFC3339)
	}
	tests := []struct {
		in, want string
		err      bool
	}{
		{"", "", false},
		{"2026-05-06T08:00:00Z", "2026-05-06T08:00:00Z", false},
		{"2026-05-06T08:00:00.5+02:00", "2026-05-06T08:00:00.5+02:00", false},
		{"2026-05-06", local("2026-05-06T00:00:00"), false},
		{"2026-05-06T09:30", local("2026-05-06T09:30:00"), false},
		{"2026-05-06 09:30:15", local("2026-05-06T09:30:15"), false},
		{"90m", "2026-05-06T10:30:00Z", false},
		{"2h", "2026-05-06T10:00:00Z", false},
		{"3d", "2026-05-03T12:00:00Z", false},
		{"-2h", "", true},
		{"yesterday", "", true},
		{"2026-13-01", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseWhen(tt.in, now)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parseWhen(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		verbose bool
	}{
		{[]string{"a", "-v", "b"}, []string{"a", "b"}, true},
		{[]string{"-v", "a"}, []string{"a"}, true},
		{[]string{"a", "--", "-v"}, []string{"a", "-v"}, false},
		{nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			env := &cliEnv{stdout: io.Discard, stderr: io.Discard}
			fs := newFlags(env, &command{name: "x"})
			v := fs.Bool("v", false, "")
			pos, err := parseInterspersed(fs, tt.args)
			if err != nil || !slices.Equal(pos, tt.pos) || *v != tt.verbose {
				t.Errorf("got %v %v %v, want %v %v", pos, *v, err, tt.pos, tt.verbose)
			}
		})
	}
}

func TestAPIClient(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/gateway") {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
			return
		}
		io.WriteString(w, `{"id":"x"}`)
	}))
	defer ts.Close()

	tests := []struct {
		name    string
		base    string
		path    string
		query   url.Values
		want    string // what the server saw
		wantErr string
	}{
		{"prefix kept", ts.URL + "/osprey/", "/api/v1/messages/a%2Fb", nil, "GET /osprey/api/v1/messages/a%2Fb? Bearer tok", ""},
		{"query encoded", ts.URL, "/api/v1/messages", url.Values{"type": {"ADT^A01"}}, "GET /api/v1/messages?type=ADT%5EA01 Bearer tok", ""},
		{"error without JSON body", ts.URL, "/gateway", nil, "GET /gateway? Bearer tok", "admin API: 502 bad gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			c, err := newAPIClient(tt.base, "tok")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.get(context.Background(), tt.path, tt.query, nil)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || seen[0] != tt.want {
				t.Errorf("server saw %q, want %q", seen, tt.want)
			}
		})
	}
}
