package query

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

func TestLimit(t *testing.T) {
	tests := []struct{ in, want int }{
		{-1, store.DefaultLimit}, {0, store.DefaultLimit}, {1, 1}, {store.MaxLimit, store.MaxLimit}, {store.MaxLimit + 1, store.MaxLimit},
	}
	for _, tc := range tests {
		if got := Limit(tc.in); got != tc.want {
			t.Errorf("Limit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCursors(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 7200))
	c := MessageCursor(at, "id|with|bars")
	gotAt, gotID, err := ParseMessageCursor(c)
	if err != nil || !gotAt.Equal(at.Truncate(time.Microsecond)) || gotID != "id|with|bars" || gotAt.Location() != time.UTC {
		t.Errorf("message cursor round trip = %v %q %v", gotAt, gotID, err)
	}
	d := DeadLetterCursor(at, "m", "dest")
	dAt, dID, dDest, err := ParseDeadLetterCursor(d)
	if err != nil || !dAt.Equal(at.Truncate(time.Microsecond)) || dID != "m" || dDest != "dest" {
		t.Errorf("dead letter cursor round trip = %v %q %q %v", dAt, dID, dDest, err)
	}
	bad := []string{"", "!!!", "e30", c + "x", d}
	for _, s := range bad {
		if _, _, err := ParseMessageCursor(s); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ParseMessageCursor(%q) = %v, want ErrInvalidCursor", s, err)
		}
	}
	if _, _, _, err := ParseDeadLetterCursor(c); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("a message cursor parsed as a dead letter cursor: %v", err)
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"PID|1||ABC^Def", "pid|1||abc^def"},
		{"MÜLLER", "müller"},
		{"Straße", "straße"},
		{"M\xfcller", "m\x1aller"}, // Latin-1 ü
		{"a\x00b", "a\x1ab"},
		{"\xff\xfe\xfd", "\x1a\x1a\x1a"}, // binary stays the same size
		{"ok \uFFFD", "ok \uFFFD"},
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := Fold([]byte(tc.in)); got != tc.want {
			t.Errorf("Fold(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct{ in, like, glob string }{
		{"ADT", "ADT%", "ADT*"},
		{"A%_\\", `A\%\_\\%`, "A%_\\*"},
		{"A*?[]", "A*?[]%", "A[*][?][[]]*"},
	}
	for _, tc := range tests {
		if got := LikePrefix(tc.in); got != tc.like {
			t.Errorf("LikePrefix(%q) = %q, want %q", tc.in, got, tc.like)
		}
		if got := GlobPrefix(tc.in); got != tc.glob {
			t.Errorf("GlobPrefix(%q) = %q, want %q", tc.in, got, tc.glob)
		}
	}
}

func TestMessageDefaults(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 999, time.UTC)
	m := store.Message{ID: "x"}
	if err := Message(&m, now); err != nil {
		t.Fatal(err)
	}
	if m.Status != store.StatusReceived || !m.ReceivedAt.Equal(now.Truncate(time.Microsecond)) || !m.UpdatedAt.Equal(m.ReceivedAt) {
		t.Errorf("defaults = %+v", m)
	}
	for _, bad := range []store.Message{{}, {ID: "x", Status: "nope"}} {
		if err := Message(&bad, now); err == nil {
			t.Errorf("Message(%+v) accepted", bad)
		}
	}
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		raw, needle string
		want        bool
	}{
		{"PID|1||ABC^Def", "abc^d", true},
		{"PID|1||ABC^Def", "ABC^D", true},
		{"PID|1||ABC^Def", "abd", false},
		{"PID|1||MÜLLER", "müller", true},
		{"PID|1||M\xfcller", "ller", true},
		{"a\x00b", "a\x00b", true},
		{"short", "much longer needle", false},
		{"", "", true},
	}
	for _, tc := range tests {
		// Called twice: the second call reuses a pooled buffer.
		for range 2 {
			if got := ContainsFold([]byte(tc.raw), FoldString(tc.needle)); got != tc.want {
				t.Errorf("ContainsFold(%q, %q) = %v, want %v", tc.raw, tc.needle, got, tc.want)
			}
			if got := ContainsFold([]byte(tc.raw), FoldString(tc.needle)); got != strings.Contains(Fold([]byte(tc.raw)), FoldString(tc.needle)) {
				t.Errorf("ContainsFold(%q, %q) disagrees with Fold", tc.raw, tc.needle)
			}
		}
	}
}
