package migrate

import (
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    []int
		wantErr bool
	}{
		{"ordered", []string{"0002_b.sql", "0001_a.sql", "README.md"}, []int{1, 2}, false},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, nil, true},
		{"duplicate", []string{"0001_a.sql", "0001_b.sql"}, nil, true},
		{"bad name", []string{"init.sql"}, nil, true},
		{"zero", []string{"0000_a.sql"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			ms, err := Load(fsys, "m")
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load: %v, wantErr %v", err, tc.wantErr)
			}
			if len(ms) != len(tc.want) {
				t.Fatalf("got %d migrations, want %d", len(ms), len(tc.want))
			}
			for i, m := range ms {
				if m.Version != tc.want[i] || m.SQL != "SELECT 1;" {
					t.Errorf("migration %d = %+v", i, m)
				}
			}
		})
	}
}
