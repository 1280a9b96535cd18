package engine

import (
	"sort"
	"testing"
	"time"
)

func TestNewIDSortsByTimeAndIsUnique(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 1000; i++ {
		id := newIDAt(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has length %d, want 26", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids issued in time order do not sort in time order")
	}
	a, b := newIDAt(base), newIDAt(base)
	if a == b || a[:10] != b[:10] {
		t.Fatalf("same-ms ids %q %q: want equal time prefix and different random part", a, b)
	}
}
