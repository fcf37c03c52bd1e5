package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t testing.TB) *sqlite.Store {
	return openAt(t, filepath.Join(t.TempDir(), "sharedcare.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB) store.Store { return open(t) },
		Reopen: func(t testing.TB, old store.Store) store.Store {
			s := old.(*sqlite.Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openAt(t, s.Path())
		},
	})
}
