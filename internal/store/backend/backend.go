// Package backend chooses the storage backend of a node: PostgreSQL when a
// database URL is configured, otherwise the embedded SQLite file in the data
// directory. It is the one place that knows both backends, so that
// cmd/sharedcare and the tests of every package that needs a store stay
// backend-agnostic.
package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
)

// Environment variables that enable PostgreSQL in tests.
const (
	// EnvTestPostgres holds the URL of a PostgreSQL database that tests may
	// create and drop schemas in.
	EnvTestPostgres = "SHAREDCARE_TEST_POSTGRES"
	// EnvRequirePostgres, when "1", makes a missing EnvTestPostgres a test
	// failure rather than a skip (CI sets it, so PostgreSQL is never
	// silently untested).
	EnvRequirePostgres = "SHAREDCARE_REQUIRE_POSTGRES"
)

// Open opens the store: PostgreSQL when dbURL is set, else SQLite file
// sharedcare.db in dataDir.
func Open(ctx context.Context, dataDir, dbURL string) (store.Store, error) {
	if dbURL != "" {
		return postgres.Open(ctx, dbURL)
	}
	if dataDir == "" {
		return nil, fhir.Invalid("", "a data directory is needed when no database URL is given")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fhir.Internal(err)
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, "sharedcare.db"))
}

// Named is one backend a test runs against; Open returns a fresh, empty
// store that is closed (and, for PostgreSQL, dropped) when t ends.
type Named struct {
	Name string
	Open func(t testing.TB) store.Store
}

// ForTests returns the backends every conformance test runs against: SQLite
// (a file in t.TempDir()) always; PostgreSQL (a fresh schema per call) when
// SHAREDCARE_TEST_POSTGRES holds a URL. When SHAREDCARE_REQUIRE_POSTGRES=1
// and the URL is missing, it calls t.Fatal.
func ForTests(t testing.TB) []Named {
	t.Helper()
	out := []Named{{Name: "sqlite", Open: OpenSQLiteForTest}}
	if PostgresURLForTests(t) != "" {
		out = append(out, Named{Name: "postgres", Open: OpenPostgresForTest})
	}
	return out
}

// PostgresURLForTests returns SHAREDCARE_TEST_POSTGRES, or "" when it is
// unset; with SHAREDCARE_REQUIRE_POSTGRES=1 an unset URL fails the test.
func PostgresURLForTests(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvTestPostgres)
	if u == "" && os.Getenv(EnvRequirePostgres) == "1" {
		t.Fatalf("%s=1 but %s is empty: PostgreSQL tests are required here (run .ci/run, or unset %s)",
			EnvRequirePostgres, EnvTestPostgres, EnvRequirePostgres)
	}
	return u
}

// reopen remembers how each test store was opened, so that ReopenForTest
// can open the same data again.
var reopen sync.Map // store.Store -> func(testing.TB) store.Store

// ReopenForTest closes old, a store from OpenSQLiteForTest or
// OpenPostgresForTest, and opens the same data again, as a restarted process
// would.
func ReopenForTest(t testing.TB, old store.Store) store.Store {
	t.Helper()
	f, ok := reopen.Load(old)
	if !ok {
		t.Fatalf("ReopenForTest: the store was not opened by this package")
	}
	if err := old.Close(); err != nil {
		t.Fatalf("close store before reopening: %v", err)
	}
	return f.(func(testing.TB) store.Store)(t)
}

// OpenSQLiteForTest opens a fresh SQLite store in t.TempDir(), closed when
// t ends.
func OpenSQLiteForTest(t testing.TB) store.Store {
	t.Helper()
	return openSQLite(t, filepath.Join(t.TempDir(), "sharedcare.db"))
}

func openSQLite(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open SQLite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	reopen.Store(store.Store(st), func(t testing.TB) store.Store { return openSQLite(t, path) })
	return st
}

// OpenPostgresForTest opens a PostgreSQL store in a new schema with a random
// name in the SHAREDCARE_TEST_POSTGRES database (so tests running in
// parallel never see each other's rows), and drops the schema when t ends.
// Without the URL it skips the test (or fails it, when PostgreSQL is
// required).
func OpenPostgresForTest(t testing.TB) store.Store {
	t.Helper()
	base := PostgresURLForTests(t)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s to a database URL (as .ci/run does)", EnvTestPostgres)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvTestPostgres, err)
	}
	defer admin.Close(ctx)
	var rnd [8]byte
	rand.Read(rnd[:])
	schema := "t_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvTestPostgres, err)
	}
	qs := u.Query()
	qs.Set("search_path", schema)
	u.RawQuery = qs.Encode()
	t.Cleanup(func() { dropSchema(t, base, schema) })
	return openPostgres(t, u.String())
}

// openPostgres opens the store at url, closed when t ends (before the
// schema is dropped: cleanups run last-registered first).
func openPostgres(t testing.TB, url string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatalf("open PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	reopen.Store(store.Store(st), func(t testing.TB) store.Store { return openPostgres(t, url) })
	return st
}

func dropSchema(t testing.TB, base, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("drop test schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
		t.Errorf("drop test schema %s: %v", schema, err)
	}
}
