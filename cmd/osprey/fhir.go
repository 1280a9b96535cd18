package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osprey-health/osprey/engine/fhir"
)

func init() {
	register(&command{
		name:    "fhir",
		summary: "FHIR R4 tools: listen (a validating FHIR endpoint that stands in for an EHR), validate FILE...",
		usage:   "listen [--port N] [--host ADDR] [--base /fhir] [--out DIR] [--count N] | validate FILE...",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			if len(args) == 0 {
				return errUsage
			}
			switch args[0] {
			case "listen":
				return fhirListen(ctx, env, c, args[1:])
			case "validate":
				return fhirValidate(env, args[1:])
			}
			return errUsage
		},
	})
}

func fhirValidate(env *cliEnv, files []string) error {
	if len(files) == 0 {
		return errUsage
	}
	bad := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			var rt string
			if rt, err = fhir.Validate(b); err == nil {
				fmt.Fprintf(env.stdout, "%s: valid %s\n", f, rt)
				continue
			}
		}
		bad++
		fmt.Fprintf(env.stdout, "%s: %v\n", f, err)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d files invalid", bad, len(files))
	}
	return nil
}

// fhirListen runs a FHIR endpoint for demos and interface testing: it validates everything
// posted to it with the same validator Osprey uses, answers like a server (a
// transaction-response Bundle, 201 or 200), honours conditional creates (If-None-Exist /
// ifNoneExist: a second create of the same identifier is 200 and creates nothing), and
// writes what it accepted to --out. It keeps nothing across runs.
func fhirListen(ctx context.Context, env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	port := fs.Int("port", 8090, "TCP port to listen on (0 picks a free one)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	base := fs.String("base", "/fhir", "base path of the FHIR endpoint")
	out := fs.String("out", "", "write each accepted request body to its own file in `DIR` (000001-<type>.json)")
	count := fs.Int("count", 0, "exit after this many accepted requests (0: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := &ehr{env: env, base: "/" + strings.Trim(*base, "/"), out: *out, count: *count, done: cancel, seen: map[string]string{}}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(env.stderr, "FHIR endpoint on http://%s%s\n", ln.Addr(), e.base)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ehr is the state of one `osprey fhir listen`.
type ehr struct {
	env   *cliEnv
	base  string
	out   string
	count int
	done  context.CancelFunc

	mu   sync.Mutex
	n    int
	ids  int
	seen map[string]string // conditional create query -> the resource's location
}

func (e *ehr) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, e.base)
	if !strings.HasPrefix(r.URL.Path, e.base) || r.Method != http.MethodPost {
		e.fail(w, http.StatusNotFound, "not-supported", "this endpoint takes POST to "+e.base+" (a Bundle) or "+e.base+"/<type>")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		e.fail(w, http.StatusBadRequest, "structure", err.Error())
		return
	}
	rt, err := fhir.Validate(body)
	if err != nil {
		fmt.Fprintf(e.env.stdout, "REJECTED %s: %v\n", r.URL.Path, err)
		e.fail(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	typ := strings.Trim(path, "/")
	switch {
	case typ == "" && rt == "Bundle":
		e.bundle(w, body)
	case typ == rt:
		loc, created := e.create(rt, typ+"?"+r.Header.Get("If-None-Exist"), r.Header.Get("If-None-Exist") != "")
		w.Header().Set("Location", loc)
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		e.accept(body, rt, fmt.Sprintf("%s %s -> %d %s", r.Method, r.URL.Path, status, loc))
		w.Header().Set("Content-Type", fhir.MediaType)
		w.WriteHeader(status)
		_, _ = w.Write(fhir.NewOperationOutcome("information", "informational", "stored as "+loc))
	default:
		e.fail(w, http.StatusBadRequest, "invalid", fmt.Sprintf("a %s posted to %s", rt, r.URL.Path))
	}
}

// create allocates a location, or finds the one of an earlier conditional create.
func (e *ehr) create(rt, query string, conditional bool) (loc string, created bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if conditional {
		if loc, ok := e.seen[query]; ok {
			return loc, false
		}
	}
	e.ids++
	loc = fmt.Sprintf("%s/%d/_history/1", rt, e.ids)
	if conditional {
		e.seen[query] = loc
	}
	return loc, true
}

func (e *ehr) bundle(w http.ResponseWriter, body []byte) {
	entries, err := fhir.Entries(body)
	if err != nil {
		e.fail(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	type response struct {
		Status   string `json:"status"`
		Location string `json:"location,omitempty"`
	}
	type entry struct {
		Response response `json:"response"`
	}
	var summary []string
	resp := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: "transaction-response"}
	for _, en := range entries {
		typ, _, _ := strings.Cut(en.URL, "?")
		conditional := en.IfNoneExist != "" || en.Method == http.MethodPut && strings.Contains(en.URL, "?")
		query := typ + "?" + en.IfNoneExist
		if en.Method == http.MethodPut {
			query = en.URL
		}
		loc, created := e.create(en.ResourceType, query, conditional)
		status := "200 OK"
		if created {
			status = "201 Created"
		}
		resp.Entry = append(resp.Entry, entry{Response: response{Status: status, Location: loc}})
		summary = append(summary, fmt.Sprintf("%s %s %s", en.Method, en.ResourceType, strings.Fields(status)[0]))
	}
	e.accept(body, "Bundle", "transaction: "+strings.Join(summary, ", "))
	b, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", fhir.MediaType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (e *ehr) accept(body []byte, rt, line string) {
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	fmt.Fprintf(e.env.stdout, "%06d %s\n", n, line)
	if e.out != "" {
		_ = os.WriteFile(filepath.Join(e.out, fmt.Sprintf("%06d-%s.json", n, rt)), body, 0o644)
	}
	if e.count > 0 && n >= e.count {
		e.done()
	}
}

func (e *ehr) fail(w http.ResponseWriter, status int, code, text string) {
	w.Header().Set("Content-Type", fhir.MediaType)
	w.WriteHeader(status)
	_, _ = w.Write(fhir.NewOperationOutcome("error", code, text))
}
