package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres is the test database used when OSPREY_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresDSN returns the test database's DSN (OSPREY_TEST_POSTGRES, or DefaultPostgres).
// When the server cannot be reached it skips the test with the reason, or fails it if
// OSPREY_TEST_REQUIRE_SERVICES=1, as CI sets.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("OSPREY_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			tb.Fatalf("PostgreSQL required (OSPREY_TEST_REQUIRE_SERVICES=1) but unreachable: %v", err)
		}
		tb.Skipf("PostgreSQL unreachable (set OSPREY_TEST_POSTGRES to a reachable database): %v", err)
	}
	return dsn
}

// PostgresSchema returns the name of a fresh schema, osprey_test_<random>, that is
// dropped with everything in it when the test ends. The schema itself is not created;
// the store creates it on Open.
func PostgresSchema(tb testing.TB, dsn string) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	name := "osprey_test_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}
