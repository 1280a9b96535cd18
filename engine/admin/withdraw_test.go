package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
)

// withdrawingEngine is the fake engine with Withdraw: it records the calls and answers
// revision 2 for message s1, ErrBadRequest for an analysis already withdrawn (s2), and
// ErrNotFound otherwise.
type withdrawingEngine struct {
	*fakeEngine
	mu    sync.Mutex
	calls []string
}

func (w *withdrawingEngine) Withdraw(_ context.Context, id, reason string) (int, error) {
	w.mu.Lock()
	w.calls = append(w.calls, id+": "+reason)
	w.mu.Unlock()
	switch id {
	case "s1":
		return 2, nil
	case "s2":
		return 0, fmt.Errorf("withdraw s2: %w: already withdrawn (revision 2)", engine.ErrBadRequest)
	}
	return 0, fmt.Errorf("withdraw %s: %w: no analysis of this message", id, engine.ErrNotFound)
}

var _ admin.Withdrawer = (*withdrawingEngine)(nil)

func TestWithdrawAnalysis(t *testing.T) {
	var we *withdrawingEngine
	env := newEnv(t, func(o *admin.Options) {
		we = &withdrawingEngine{fakeEngine: o.Engine.(*fakeEngine)}
		o.Engine = we
	})
	const path = "/api/v1/messages/%s/analysis/withdraw"
	tests := []struct {
		name, id, token, body string
		want                  int
		contains              string
	}{
		{"withdrawn", "s1", adminToken, `{"reason":"calcification, not blood"}`, http.StatusAccepted, `"revision":2`},
		{"a reason is required", "s1", adminToken, `{}`, http.StatusBadRequest, "reason is required"},
		{"no body", "s1", adminToken, ``, http.StatusBadRequest, "reason is required"},
		{"bad json", "s1", adminToken, `{"reason":`, http.StatusBadRequest, "body"},
		{"already withdrawn", "s2", adminToken, `{"reason":"again"}`, http.StatusBadRequest, "already withdrawn"},
		{"no analysis", "nope", adminToken, `{"reason":"x"}`, http.StatusNotFound, "no analysis"},
		{"read token may not", "s1", readToken, `{"reason":"x"}`, http.StatusForbidden, ""},
		{"no token", "s1", "", `{"reason":"x"}`, http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.callBody(t, http.MethodPost, fmt.Sprintf(path, tt.id), tt.token, strings.NewReader(tt.body))
			if r.status != tt.want || !strings.Contains(string(r.body), tt.contains) {
				t.Errorf("%d %s, want %d containing %q", r.status, r.body, tt.want, tt.contains)
			}
		})
	}
	we.mu.Lock()
	defer we.mu.Unlock()
	if len(we.calls) == 0 || we.calls[0] != "s1: calcification, not blood" {
		t.Errorf("engine calls %q", we.calls)
	}
	for _, c := range we.calls {
		if strings.HasPrefix(c, "s1: x") {
			t.Errorf("a read-only or anonymous caller reached the engine: %q", we.calls)
		}
	}
}

func TestWithdrawNotImplemented(t *testing.T) {
	env := newEnv(t)
	r := env.callBody(t, http.MethodPost, "/api/v1/messages/s1/analysis/withdraw", adminToken, strings.NewReader(`{"reason":"x"}`))
	if r.status != http.StatusNotImplemented {
		t.Errorf("%d %s, want 501", r.status, r.body)
	}
}
