package engine

import (
	"strconv"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/broker"
)

// chunkEntries keeps a running size instead of sizing each candidate record again; it must
// still cut where the limit says, never leave an entry out, and keep their order.
func TestChunkEntriesFillsRecordsUpToTheLimit(t *testing.T) {
	var entries []broker.Entry
	for i := range 200 {
		entries = append(entries, broker.Entry{ID: "m" + strconv.Itoa(i),
			Headers: map[string]string{hdrReceived: "2026-12-01T00:00:00Z", hdrContentType: ContentHL7v2},
			Body:    []byte(strings.Repeat("x", 50+i%37))})
	}
	for _, limit := range []int{1, 200, 1000, 4096, 1 << 20} {
		chunks := chunkEntries(entries, limit)
		n := 0
		for ci, c := range chunks {
			if len(c) == 0 {
				t.Fatalf("limit %d: empty chunk %d", limit, ci)
			}
			if len(c) > 1 && broker.RecordSize(c) > limit {
				t.Errorf("limit %d: chunk %d of %d entries is %d bytes", limit, ci, len(c), broker.RecordSize(c))
			}
			// Greedy: the next entry would not have fitted.
			if ci+1 < len(chunks) && broker.RecordSize(append(c[:len(c):len(c)], chunks[ci+1][0])) <= limit {
				t.Errorf("limit %d: chunk %d was cut early", limit, ci)
			}
			for _, e := range c {
				if e.ID != entries[n].ID {
					t.Fatalf("limit %d: entry %d is %s, want %s", limit, n, e.ID, entries[n].ID)
				}
				n++
			}
		}
		if n != len(entries) {
			t.Errorf("limit %d: %d of %d entries in chunks", limit, n, len(entries))
		}
	}
}
