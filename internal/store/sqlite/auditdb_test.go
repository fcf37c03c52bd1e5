package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/audit"
)

// oldLayout rewrites the store at path as a node kept it before the audit
// log had a file of its own: the log's tables (migration 0005) and rows in
// the store's file, no audit file.
func oldLayout(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var schema string
	for _, m := range ms {
		if strings.Contains(m.name, "audit") {
			schema = m.sql
		}
	}
	stmts := []string{schema, `DELETE FROM audit_head`, fmt.Sprintf("ATTACH DATABASE '%s' AS a", auditPath(path))}
	for _, tb := range []string{"audit_head", "audit_entries", "audit_patients", "audit_hashes", "audit_checkpoints"} {
		stmts = append(stmts, "INSERT INTO main."+tb+" SELECT * FROM a."+tb)
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	for _, f := range []string{"", "-wal", "-shm"} {
		os.Remove(auditPath(path) + f)
	}
}

// recordSome records n entries and a checkpoint in the store at path, and
// returns the node's verifier.
func recordSome(t *testing.T, path, dir string, n int) note.Verifier {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, s, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := &audit.Entry{Time: time.Now(), User: fmt.Sprintf("u%d", i), Role: "clinician", Org: "A81001",
			Patients: []string{fmt.Sprintf("p%d", i%3)}, Action: audit.ActionRead, Outcome: audit.OutcomeSuccess,
			Event: []byte(`{"resourceType":"AuditEvent"}`)}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return l.Verifier()
}

// verifyAt opens the store at path and verifies its log.
func verifyAt(t *testing.T, path string, v note.Verifier) (*audit.Report, error) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var tables int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name LIKE 'audit%'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the store's own file still has %d audit tables or indexes", tables)
	}
	return audit.Verify(ctx, s, note.VerifierList(v), nil)
}

// TestAuditFileAdoptsAnOldLog: a node whose audit log is in the store's
// file (the layout before the log had a file of its own) keeps every entry
// and checkpoint on upgrade: the log moves to the audit file whole, still
// verifies, and the old tables are gone; opening again changes nothing.
func TestAuditFileAdoptsAnOldLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sharedcare.db")
	v := recordSome(t, path, dir, 7)
	oldLayout(t, path)
	if _, err := os.Stat(auditPath(path)); !os.IsNotExist(err) {
		t.Fatalf("the audit file is still there: %v", err)
	}
	for range 2 {
		r, err := verifyAt(t, path, v)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Entries != 7 || r.Checkpoints == 0 {
			t.Fatalf("after the move: %+v", r)
		}
	}
}

// TestAuditFileMoveInterrupted: a crash after the copy committed and
// before the old tables were dropped leaves both; the next open drops the
// old ones. Two different logs, one in each file, are refused rather than
// one chosen.
func TestAuditFileMoveInterrupted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sharedcare.db")
	v := recordSome(t, path, dir, 5)
	saved, err := os.ReadFile(auditPath(path))
	if err != nil {
		t.Fatal(err)
	}
	oldLayout(t, path)
	if err := os.WriteFile(auditPath(path), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := verifyAt(t, path, v)
	if err != nil || !r.OK() || r.Entries != 5 {
		t.Fatalf("after an interrupted move: %v %+v", err, r)
	}

	// Another node's log of 6 entries in the audit file, 5 in the store's
	// file: refused.
	dir2, dir3 := t.TempDir(), t.TempDir()
	path2, path3 := filepath.Join(dir2, "sharedcare.db"), filepath.Join(dir3, "sharedcare.db")
	recordSome(t, path2, dir2, 5)
	oldLayout(t, path2)
	recordSome(t, path3, dir3, 6)
	other, err := os.ReadFile(auditPath(path3))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditPath(path2), other, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), path2); err == nil {
		s.Close()
		t.Fatal("two different audit logs were merged or one was dropped: want Open to refuse")
	} else if !strings.Contains(err.Error(), "refusing to choose") {
		t.Fatalf("Open: %v", err)
	}
}
