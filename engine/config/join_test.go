package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJoinWait(t *testing.T) {
	base := `channels:
  - name: studies
    source: {http: {path: /x}}
    filter: 'study.Modality == "CT" && order.Priority == "S"'
    destinations:
      - name: out
        file: {dir: /tmp/x}
`
	tests := []struct {
		name    string
		extra   string
		want    time.Duration
		wantErr string
	}{
		{"default does not wait", "", 0, ""},
		{"ten minutes", "    join: {wait: 10m}\n", 10 * time.Minute, ""},
		{"negative", "    join: {wait: -1s}\n", 0, "must not be negative"},
		{"unknown key", "    join: {timeout: 1m}\n", 0, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := write(t, map[string]string{"osprey.yaml": base + tt.extra})
			c, lints := Load(filepath.Join(dir, "osprey.yaml"), reg)
			got := strings.Join(lintLines(dir, lints), "\n")
			if tt.wantErr != "" {
				if !strings.Contains(got, tt.wantErr) {
					t.Fatalf("lints %q, want one containing %q", got, tt.wantErr)
				}
				return
			}
			if c == nil || got != "" {
				t.Fatalf("Load: %s", got)
			}
			if c.Channels[0].JoinWait != tt.want {
				t.Errorf("JoinWait = %s, want %s", c.Channels[0].JoinWait, tt.want)
			}
		})
	}
}
