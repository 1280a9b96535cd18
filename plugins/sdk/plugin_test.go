package sdk_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
)

// registrations makes the names of TestRegistry unique to each run (-count=N): the registry
// lives as long as the process.
var registrations atomic.Int32

func TestRegistry(t *testing.T) {
	ok := func(context.Context, *sdk.Job) (protocol.Result, error) { return protocol.Result{}, nil }
	name := fmt.Sprintf("registry-test-%d", registrations.Add(1))
	p := sdk.Plugin{Name: name, Version: "1.0.0", Model: testModel, Handle: ok}
	sdk.Register(p)
	got, found := sdk.Lookup(name)
	if !found || got.Name != p.Name || got.Version != p.Version {
		t.Errorf("Lookup = %+v, %v", got, found)
	}
	if _, found := sdk.Lookup("registry-missing"); found {
		t.Error("Lookup found a plugin never registered")
	}
	if names := sdk.Names(); !slices.Contains(names, name) || !slices.IsSorted(names) {
		t.Errorf("Names = %v", names)
	}
	panics := []struct {
		name    string
		p       sdk.Plugin
		mention string
	}{
		{"duplicate", p, "twice"},
		{"invalid name", sdk.Plugin{Name: "No Such", Version: "1.0.0", Handle: ok}, "plugin name"},
		{"no handler", sdk.Plugin{Name: name + "-nohandler", Version: "1.0.0", Model: testModel}, "Handle"},
		{"no model", sdk.Plugin{Name: name + "-nomodel", Version: "1.0.0", Handle: ok}, "model"},
	}
	for _, tt := range panics {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("Register did not panic")
				}
				if msg := panicText(r); !strings.Contains(msg, tt.mention) {
					t.Errorf("panic %q does not mention %q", msg, tt.mention)
				}
			}()
			sdk.Register(tt.p)
		})
	}
}

func panicText(r any) string {
	if err, ok := r.(error); ok {
		return err.Error()
	}
	s, _ := r.(string)
	return s
}
