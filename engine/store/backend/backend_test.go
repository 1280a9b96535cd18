package backend

import (
	"path/filepath"
	"testing"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/postgres"
	"github.com/osprey-health/osprey/engine/store/sqlite"
	"github.com/osprey-health/osprey/engine/store/storetest"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(t *testing.T) Config
		want func(store.Store) bool
	}{
		{"sqlite", func(t *testing.T) Config {
			return Config{SQLite: filepath.Join(t.TempDir(), "osprey.db")}
		}, func(s store.Store) bool { _, ok := s.(*sqlite.Store); return ok }},
		{"memory", func(t *testing.T) Config {
			return Config{SQLite: sqlite.Memory}
		}, func(s store.Store) bool { _, ok := s.(*sqlite.Store); return ok }},
		{"postgres wins", func(t *testing.T) Config {
			dsn := storetest.PostgresDSN(t)
			return Config{SQLite: filepath.Join(t.TempDir(), "osprey.db"), Postgres: dsn, Schema: storetest.PostgresSchema(t, dsn)}
		}, func(s store.Store) bool { _, ok := s.(*postgres.Store); return ok }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.cfg(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !tc.want(s) {
				t.Errorf("Open returned a %T", s)
			}
			if err := s.Ping(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestOpenNothing(t *testing.T) {
	if s, err := Open(t.Context(), Config{}); err == nil {
		s.Close()
		t.Fatal("Open with an empty config succeeded")
	}
}
