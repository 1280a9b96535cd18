package admin_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

func TestDebugProfilesNeedAnAdminToken(t *testing.T) {
	env := newEnv(t)
	for _, path := range []string{"/api/v1/debug/pprof/", "/api/v1/debug/pprof/heap", "/api/v1/debug/pprof/goroutine?debug=1"} {
		for _, tc := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {readToken, http.StatusForbidden}, {adminToken, http.StatusOK}} {
			if r := env.call(t, "GET", path, tc.token); r.status != tc.want {
				t.Errorf("GET %s with token %q: %d, want %d: %s", path, tc.token, r.status, tc.want, r.body)
			}
		}
	}
	r := env.call(t, "GET", "/api/v1/debug/pprof/heap", readToken)
	if e := decode[errorBody](t, r); !strings.Contains(e.Error, `needs role "admin"`) {
		t.Errorf("403 for a read token says %q; want it to name the role needed", e.Error)
	}
}

func TestDebugProfiles(t *testing.T) {
	env := newEnv(t)
	t.Run("index links the profiles", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/debug/pprof/", adminToken)
		for _, name := range []string{"heap", "goroutine", "allocs", "profile", "trace"} {
			if !bytes.Contains(r.body, []byte("href='"+name+"?")) {
				t.Errorf("index has no relative link to %s:\n%s", name, r.body)
			}
		}
	})
	t.Run("heap is a gzipped protobuf profile", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/debug/pprof/heap", adminToken)
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("heap profile is not gzip (%d bytes, %q): %v", len(r.body), r.header.Get("Content-Type"), err)
		}
		if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
			t.Fatalf("heap profile: %d bytes, %v", len(b), err)
		}
	})
	t.Run("goroutine dump names this test", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/debug/pprof/goroutine?debug=2", adminToken)
		if !bytes.Contains(r.body, []byte("TestDebugProfiles")) {
			t.Errorf("goroutine dump does not show the running test:\n%.500s", r.body)
		}
	})
	t.Run("cpu profile for one second", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/debug/pprof/profile?seconds=1", adminToken)
		if r.status != http.StatusOK {
			t.Fatalf("profile: %d %s", r.status, r.body)
		}
		if _, err := gzip.NewReader(bytes.NewReader(r.body)); err != nil {
			t.Fatalf("cpu profile is not gzip: %v", err)
		}
	})
}

func TestDebugProfileRates(t *testing.T) {
	env := newEnv(t)
	defer runtime.SetMutexProfileFraction(runtime.SetMutexProfileFraction(-1))
	defer runtime.SetBlockProfileRate(0)

	post := func(body, token string) response {
		return env.callBody(t, "POST", "/api/v1/debug/pprof/rates", token, strings.NewReader(body))
	}
	if r := post(`{"mutex_fraction": 5}`, readToken); r.status != http.StatusForbidden {
		t.Fatalf("read token set rates: %d", r.status)
	}
	if r := post(`{"mutex_fraction": 7, "block_rate": 1000}`, adminToken); r.status != http.StatusNoContent {
		t.Fatalf("set rates: %d %s", r.status, r.body)
	}
	if got := runtime.SetMutexProfileFraction(-1); got != 7 {
		t.Errorf("mutex fraction after POST: %d, want 7", got)
	}
	for _, tc := range []struct{ body, want string }{
		{`{}`, `give "block_rate"`},
		{`{"mutex_fraction": -2}`, "0 (off) or positive"},
		{`{"mutex_rate": 1}`, "unknown field"},
		{`not json`, "body: want"},
	} {
		r := post(tc.body, adminToken)
		if e := decode[errorBody](t, r); r.status != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) {
			t.Errorf("POST %s: %d %q, want 400 with %q", tc.body, r.status, e.Error, tc.want)
		}
	}
	if got := runtime.SetMutexProfileFraction(-1); got != 7 {
		t.Errorf("a refused POST changed the mutex fraction to %d", got)
	}
}
