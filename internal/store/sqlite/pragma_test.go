package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestDurabilitySettings checks the settings that durability rests on, on
// the write connection itself: WAL, and synchronous=FULL so that a COMMIT
// (and so every acknowledged Write) is on disk before Write returns. It is
// SQLite-specific because the settings are.
func TestDurabilitySettings(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, pragma string
		want         any
	}{
		{"the journal is a write-ahead log", "journal_mode", "wal"},
		{"every commit is synced (synchronous FULL = 2)", "synchronous", int64(2)},
		{"new files get the tuned page size", "page_size", int64(pageSize)},
		{"checkpoints run in the background, not in commits", "wal_autocheckpoint", int64(0)},
	} {
		var got any
		if err := s.wconn.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s: PRAGMA %s = %v (%T), want %v", tc.name, tc.pragma, got, got, tc.want)
		}
	}
	var qo int64
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != 1 {
		t.Errorf("read pool: PRAGMA query_only = %d, %v; want 1", qo, err)
	}
}
