package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

// The job queries must stay index range scans as the table grows: the deadline sweep
// runs every few seconds and the listing backs the dashboard.
func TestJobQueryPlans(t *testing.T) {
	s := openFile(t)
	listing := func(q store.JobQuery) (string, []any) {
		sqlText, args, _, err := jobsSQL(q)
		if err != nil {
			t.Fatal(err)
		}
		return sqlText, args
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		stmt  func() (string, []any)
		index string
	}{
		{"expired jobs", func() (string, []any) { return sqlExpiredJobs, []any{0, 10} }, "jobs_open_by_deadline"},
		{"jobs", func() (string, []any) { return listing(store.JobQuery{}) }, "jobs_by_created"},
		{"jobs after a cursor", func() (string, []any) {
			return listing(store.JobQuery{Cursor: query.JobCursor(at, "j")})
		}, "jobs_by_created"},
		{"jobs of a message", func() (string, []any) { return listing(store.JobQuery{MessageID: "m"}) }, "jobs_by_message"},
		{"jobs of a study", func() (string, []any) { return listing(store.JobQuery{StudyUID: "1.2.3"}) }, "jobs_by_study"},
		{"jobs of a plugin by status", func() (string, []any) {
			return listing(store.JobQuery{Plugin: "ich", Status: []store.JobStatus{store.JobQueued}})
		}, "jobs_by_plugin_status"},
		{"job counts", func() (string, []any) { return sqlJobCounts, nil }, "jobs_by_plugin_status"},
		{"prune cascade", func() (string, []any) { return `SELECT 1 FROM jobs WHERE message_id = ?`, []any{"m"} }, "jobs_by_message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sqlText, args := tc.stmt()
			if p := queryPlan(t, s, sqlText, args...); !strings.Contains(p, "INDEX "+tc.index) {
				t.Errorf("plan %q does not use %s", p, tc.index)
			}
		})
	}
}
