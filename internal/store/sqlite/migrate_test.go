package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("SELECT max(version) FROM schema_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a new file gets every migration, recorded in schema_version", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sharedcare.db")
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got := schemaVersion(t, path); got != len(ms) {
			t.Errorf("schema_version = %d, want %d", got, len(ms))
		}
		// Opening again applies nothing twice (a second CREATE TABLE
		// would fail).
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		s.Close()
	})

	t.Run("two stores opening one new file at once both succeed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sharedcare.db")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(ctx, path)
				if err == nil {
					defer s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
	})

	t.Run("a file from a newer program is refused, not written", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sharedcare.db")
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE schema_version SET version = 999"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if s, err := Open(ctx, path); err == nil {
			s.Close()
			t.Fatal("Open of a schema newer than the program: got nil error")
		}
		if got := schemaVersion(t, path); got != 999 {
			t.Errorf("schema_version changed to %d by the refused Open", got)
		}
	})

	// migratedFrom writes a fixture with put, takes the file back to
	// schema v (as a program before migration v+1 would have left it) and
	// opens it again, which migrates it.
	migratedFrom := func(t *testing.T, v int, put func(testing.TB, store.Store)) (*Store, string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "sharedcare.db")
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		put(t, s)
		s.Close()
		backTo(t, path, v)
		if s, err = Open(ctx, path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if got := schemaVersion(t, path); got != len(ms) {
			t.Errorf("schema_version = %d, want %d", got, len(ms))
		}
		return s, path
	}

	t.Run("migration 6 fills in the access columns of resources written before it", func(t *testing.T) {
		s, _ := migratedFrom(t, 5, storetest.PutAccessFixture)
		storetest.CheckAccessFixture(t, s)
	})

	t.Run("migration 7 gives the token rows of resources written before it their date span", func(t *testing.T) {
		s, path := migratedFrom(t, 6, storetest.PutDateSpanFixture)
		storetest.CheckDateSpanFixture(t, s)
		// Every span is filled in: none is left at the column's default
		// (the widest span), which would only have cost probes.
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var widest int
		if err := db.QueryRow("SELECT count(*) FROM idx_token WHERE date_lo = -9223372036854775808 AND date_hi = 9223372036854775807").Scan(&widest); err != nil {
			t.Fatal(err)
		}
		if widest != 0 {
			t.Errorf("%d token rows kept the default span", widest)
		}
	})
}

// backTo takes the file at path back to schema version v, as a program
// before the later migrations would have left it: each undo below reverses
// one migration, newest first.
func backTo(t *testing.T, path string, v int) {
	t.Helper()
	undo := map[int][]string{
		7: {
			"DROP INDEX idx_token_code",
			"ALTER TABLE idx_token DROP COLUMN date_lo",
			"ALTER TABLE idx_token DROP COLUMN date_hi",
			"CREATE INDEX idx_token_code ON idx_token (param, code, system, type, rid)",
		},
		6: {
			"ALTER TABLE resources DROP COLUMN source",
			"ALTER TABLE resources DROP COLUMN labelled",
		},
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for m := schemaVersion(t, path); m > v; m-- {
		qs, ok := undo[m]
		if !ok {
			t.Fatalf("no undo for migration %d", m)
		}
		for _, q := range qs {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("undo %d: %s: %v", m, q, err)
			}
		}
	}
	if _, err := db.Exec("UPDATE schema_version SET version = ?", v); err != nil {
		t.Fatal(err)
	}
}
