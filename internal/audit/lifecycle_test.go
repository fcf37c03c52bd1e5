package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
)

func checkpoints(t *testing.T, st store.Store) []*store.AuditCheckpoint {
	t.Helper()
	cs, err := st.(store.AuditStore).AuditCheckpoints(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestCheckpointsWhileGrowingAndOnClose: the node signs a checkpoint each
// interval in which the log grew (none while it is idle), and one on Close.
func TestCheckpointsWhileGrowingAndOnClose(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			dir := t.TempDir()
			ctx := context.Background()
			l, err := audit.OpenEvery(ctx, st, dir, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			record(t, l, entry("u", "A81001", []string{"p1"}))
			deadline := time.Now().Add(5 * time.Second)
			for len(checkpoints(t, st)) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			cs := checkpoints(t, st)
			if len(cs) != 1 || cs[0].Size != 1 {
				t.Fatalf("after one entry and an interval: checkpoints %v, want one of size 1", cs)
			}
			time.Sleep(200 * time.Millisecond) // idle: nothing new to sign
			if cs := checkpoints(t, st); len(cs) != 1 {
				t.Errorf("an idle log got %d checkpoints, want still 1", len(cs))
			}
			record(t, l, entry("u", "A81001", []string{"p1"}))
			record(t, l, entry("u", "A81001", []string{"p1"}))
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			cs = checkpoints(t, st)
			if last := cs[len(cs)-1]; last.Size != 3 {
				t.Errorf("after Close the latest checkpoint covers %d entries, want 3", last.Size)
			}
			// The node keeps its latest checkpoint beside its key.
			kept, err := os.ReadFile(filepath.Join(dir, audit.CheckpointFile))
			if err != nil {
				t.Fatal(err)
			}
			c, err := audit.ParseCheckpoint(kept, note.VerifierList(l.Verifier()))
			if err != nil || c.Size != 3 {
				t.Errorf("checkpoint file: %v, %v; want the checkpoint of 3", c, err)
			}
			// Closed: Record fails with EUnavailable (the API answers 503).
			if err := l.Record(ctx, entry("u", "A81001", nil)); !fhir.IsKind(err, fhir.EUnavailable) {
				t.Errorf("Record after Close: %v, want EUnavailable", err)
			}
		})
	}
}

// TestRecordFailsClosedWhenTheStoreIsDown: an entry that cannot be made
// durable is an EUnavailable error to its caller, never a success.
func TestRecordFailsClosedWhenTheStoreIsDown(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, st, _ := openLog(t, b)
			record(t, l, entry("u", "A81001", []string{"p1"}))
			st.Close()
			e := entry("u", "A81001", []string{"p1"})
			if err := l.Record(context.Background(), e); !fhir.IsKind(err, fhir.EUnavailable) {
				t.Errorf("Record on a closed store: %v, want EUnavailable", err)
			}
		})
	}
}

// TestKeyIsKeptAndReused: the signing key is created once, mode 0600, and a
// restarted node signs with the same key.
func TestKeyIsKeptAndReused(t *testing.T) {
	b := backend.ForTests(t)[0]
	st := b.Open(t)
	dir := t.TempDir()
	ctx := context.Background()
	l1, err := audit.Open(ctx, st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	l1.Close(ctx)
	fi, err := os.Stat(filepath.Join(dir, audit.SigningKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file: %v %v, want mode 0600", err, fi.Mode().Perm())
	}
	l2, err := audit.Open(ctx, st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(ctx)
	if l1.VerifierKey() != l2.VerifierKey() {
		t.Errorf("a restarted node has a new key")
	}
	if vk, err := audit.ReadVerifierKey(dir); err != nil || vk != l1.VerifierKey() {
		t.Errorf("verifier key file %q (%v), want %q", vk, err, l1.VerifierKey())
	}
	os.Chmod(filepath.Join(dir, audit.SigningKeyFile), 0o644)
	if _, err := audit.Open(ctx, st, dir, nil); err == nil {
		t.Errorf("a signing key readable by others was accepted")
	}
}

// TestNodesSharingAStoreAppendInTurn: several logs appending to one store
// at once (nodes sharing a PostgreSQL database; on SQLite, processes
// sharing the file, each with its own connection) never collide on a leaf
// number or leave a gap, and the result verifies.
func TestNodesSharingAStoreAppendInTurn(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			ctx := context.Background()
			stores := []store.Store{st, st, st}
			if s, ok := st.(*sqlite.Store); ok {
				// Separate handles on one file: as separate processes.
				for i := 1; i < len(stores); i++ {
					o, err := sqlite.Open(ctx, s.Path())
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { o.Close() })
					stores[i] = o
				}
			}
			var logs []*audit.Log
			for _, s := range stores {
				l, err := audit.Open(ctx, s, t.TempDir(), nil)
				if err != nil {
					t.Fatal(err)
				}
				logs = append(logs, l)
			}
			const each = 60
			var mu sync.Mutex
			seen := map[int64]bool{}
			var wg sync.WaitGroup
			for n, l := range logs {
				for w := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range each / 4 {
							e := entry(fmt.Sprintf("node%d-w%d-%d", n, w, i), "A81001", []string{"p1"})
							if err := l.Record(ctx, e); err != nil {
								t.Errorf("node %d: %v", n, err)
								return
							}
							mu.Lock()
							if seen[e.Index] {
								t.Errorf("leaf %d given twice", e.Index)
							}
							seen[e.Index] = true
							mu.Unlock()
						}
					}()
				}
			}
			wg.Wait()
			for _, l := range logs {
				if err := l.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
			n := int64(len(logs) * each)
			for i := range n {
				if !seen[i] {
					t.Errorf("leaf %d never given", i)
				}
			}
			var vs []note.Verifier
			for _, l := range logs {
				vs = append(vs, l.Verifier())
			}
			r, err := audit.Verify(ctx, st.(store.AuditStore), note.VerifierList(vs...), nil)
			if err != nil || !r.OK() || r.Entries != n {
				t.Errorf("verify: %v %+v", err, r)
			}
		})
	}
}
