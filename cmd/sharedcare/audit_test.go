package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// auditCmd runs `sharedcare audit ARGS` and returns what it printed.
func auditCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	auditOut = &out
	t.Cleanup(func() { auditOut = os.Stdout })
	err := runAudit(t.Context(), args)
	return out.String(), err
}

// recordEntries records n entries in the node at dir, as a server would.
func recordEntries(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := backend.Open(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := audit.Open(ctx, st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := &audit.Entry{User: fmt.Sprintf("u%d", i), Org: "A81001", Patients: []string{"p1"},
			Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Event: []byte(`{"resourceType":"AuditEvent"}`)}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// tamper runs raw SQL on the node's SQLite file.
func tamper(t *testing.T, dir, sql string) {
	t.Helper()
	st, err := backend.Open(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.(interface {
		ExecAuditForTest(context.Context, string, ...any) error
	}).ExecAuditForTest(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestAuditCommandVerifiesAndPrintsCheckpoints(t *testing.T) {
	t.Setenv("SHAREDCARE_DB", "")
	dir := t.TempDir()
	recordEntries(t, dir, 10)
	if fi, err := os.Stat(filepath.Join(dir, audit.SigningKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v, mode %v; want a file with mode 0600", err, fi.Mode().Perm())
	}

	out, err := auditCmd(t, "checkpoint", "--data", dir)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if lines := strings.Split(out, "\n"); len(lines) < 5 || lines[1] != "10" || !strings.HasPrefix(lines[4], "— sharedcare-audit-") {
		t.Fatalf("checkpoint printed %q; want a signed note of 10 entries", out)
	}
	kept := filepath.Join(t.TempDir(), "kept")
	os.WriteFile(kept, []byte(out), 0o644)

	// The verifier key the command prints opens the checkpoint.
	vkey, err := auditCmd(t, "key", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		t.Fatalf("key printed %q: %v", vkey, err)
	}
	if _, err := audit.ParseCheckpoint([]byte(out), note.VerifierList(v)); err != nil {
		t.Errorf("the printed checkpoint does not open with the printed key: %v", err)
	}

	out, err = auditCmd(t, "verify", "--data", dir, "--checkpoint", kept)
	if err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, "10 verified") {
		t.Fatalf("verify of a clean log: %v\n%s", err, out)
	}

	// An entry altered: verify fails and names it.
	tamper(t, dir, `UPDATE audit_entries SET who_user = 'x' WHERE idx = 4`)
	out, err = auditCmd(t, "verify", "--data", dir, "--checkpoint", kept)
	if err == nil || !strings.Contains(err.Error(), "first bad entry 4") {
		t.Errorf("verify of an altered log: %v\n%s", err, out)
	}
	if run(t.Context(), []string{"audit", "verify", "--data", dir}, &bytes.Buffer{}) != 1 {
		t.Errorf("exit code of a failed verify is not 1")
	}
}

func TestAuditVerifyCatchesARollbackBehindAKeptCheckpoint(t *testing.T) {
	t.Setenv("SHAREDCARE_DB", "")
	dir := t.TempDir()
	recordEntries(t, dir, 6)
	// A backup of the whole data directory at 6 entries.
	backup := t.TempDir()
	for _, f := range []string{"sharedcare.db", "sharedcare-audit.db", audit.SigningKeyFile, audit.VerifierKeyFile, audit.CheckpointFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(backup, f), b, 0o600)
	}
	recordEntries(t, dir, 4)
	out, err := auditCmd(t, "checkpoint", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(t.TempDir(), "kept")
	os.WriteFile(kept, []byte(out), 0o644)

	// Restored from the backup, checkpoint file and all: only the
	// checkpoint kept outside tells.
	if out, err := auditCmd(t, "verify", "--data", backup); err != nil {
		t.Fatalf("the backup on its own verifies: %v\n%s", err, out)
	}
	out, err = auditCmd(t, "verify", "--data", backup, "--checkpoint", kept)
	if err == nil || !strings.Contains(err.Error(), "first bad entry 6") || !strings.Contains(out, "rolled back") {
		t.Errorf("verify of a rolled-back store: %v\n%s", err, out)
	}

	// Only the database restored (the audit log's file): the node's own
	// checkpoint file tells.
	db, err := os.ReadFile(filepath.Join(backup, "sharedcare-audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "sharedcare-audit.db-wal"))
	os.Remove(filepath.Join(dir, "sharedcare-audit.db-shm"))
	if err := os.WriteFile(filepath.Join(dir, "sharedcare-audit.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = auditCmd(t, "verify", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "first bad entry 6") || !strings.Contains(out, "rolled back") {
		t.Errorf("verify of a store restored under a node that signed more: %v\n%s", err, out)
	}
}

func TestAuditCommandRefusesBadUsage(t *testing.T) {
	t.Setenv("SHAREDCARE_DATA", "")
	t.Setenv("SHAREDCARE_DB", "")
	for _, args := range [][]string{nil, {"frobnicate"}, {"verify"}, {"verify", "--data", t.TempDir(), "extra"},
		{"verify", "--data", t.TempDir(), "--checkpoint", filepath.Join(t.TempDir(), "none")}} {
		if _, err := auditCmd(t, args...); !fhir.IsKind(err, fhir.EInvalid) {
			t.Errorf("audit %q: got %v, want a usage error", args, err)
		}
	}
}
