package sqlite

import (
	"strings"
	"testing"
)

// The job queries must stay index range scans as the table grows: the deadline sweep
// runs every few seconds and the listing backs the dashboard.
func TestJobQueryPlans(t *testing.T) {
	s := openFile(t)
	tests := []struct {
		name, sql string
		args      []any
		index     string
	}{
		{"expired jobs", sqlExpiredJobs, []any{0, 10}, "jobs_open_by_deadline"},
		{"jobs of a message", `SELECT id FROM jobs WHERE message_id = ?
			ORDER BY created_at DESC, id DESC LIMIT ?`, []any{"m", 10}, "jobs_by_message"},
		{"jobs of a study", `SELECT id FROM jobs WHERE study_uid = ?
			ORDER BY created_at DESC, id DESC LIMIT ?`, []any{"1.2.3", 10}, "jobs_by_study"},
		{"jobs of a plugin by status", `SELECT id FROM jobs WHERE plugin = ? AND status IN (?)
			ORDER BY created_at DESC, id DESC LIMIT ?`, []any{"ich", "queued", 10}, "jobs_by_plugin_status"},
		{"prune cascade", `SELECT 1 FROM jobs WHERE message_id = ?`, []any{"m"}, "jobs_by_message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tc.sql, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX "+tc.index) {
				t.Errorf("plan %q does not use %s", p, tc.index)
			}
		})
	}
}
