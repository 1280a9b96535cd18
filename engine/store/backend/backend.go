// Package backend opens the message store the configuration names, so the server depends
// on one function rather than on both implementations. It is the only package that
// imports both; package store itself imports neither.
package backend

import (
	"context"
	"errors"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/postgres"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

// Config is the server.store section of the configuration.
type Config struct {
	// SQLite is the path of the database file (server.store.sqlite), typically
	// <data dir>/osprey.db; sqlite.Memory keeps it in memory.
	SQLite string
	// Postgres is a PostgreSQL DSN (server.store.postgres). When set it wins over SQLite,
	// so a default SQLite path need not be cleared.
	Postgres string
	// Schema is the PostgreSQL schema holding the tables; empty means "osprey".
	Schema string
}

// Open opens and migrates the configured store.
func Open(ctx context.Context, cfg Config) (store.Store, error) {
	switch {
	case cfg.Postgres != "":
		return postgres.Open(ctx, cfg.Postgres, postgres.Options{Schema: cfg.Schema})
	case cfg.SQLite != "":
		return sqlite.Open(ctx, cfg.SQLite, sqlite.Options{})
	}
	return nil, errors.New("store: no store configured: set server.store.sqlite or server.store.postgres")
}
