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

// TestRecordFailsClosedWhenTheSpoolFails: an entry that cannot be made
// durable is an EUnavailable error to its caller, never a success, and so
// is every later one.
func TestRecordFailsClosedWhenTheSpoolFails(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, st, _ := openLog(t, b)
			record(t, l, entry("u", "A81001", []string{"p1"}))
			audit.BreakSpool(l)
			for i := range 2 {
				if err := l.Record(context.Background(), entry("u", "A81001", []string{"p1"})); !fhir.IsKind(err, fhir.EUnavailable) {
					t.Errorf("Record %d on a broken spool: %v, want EUnavailable", i, err)
				}
			}
			if n, err := st.(store.AuditStore).AuditSize(context.Background()); err != nil || n != 1 {
				t.Errorf("log size %d (%v), want 1", n, err)
			}
		})
	}
}

// TestStoreDownEntriesWaitInTheSpool: while the log's store is down,
// entries are still durable in the spool (Record succeeds) but nothing can
// be read (Flush and Search fail); once maxBacklog wait, Record fails
// closed; and the next Open over a working store moves every acknowledged
// entry into the log, once, in order.
func TestStoreDownEntriesWaitInTheSpool(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			dir := t.TempDir()
			l, err := audit.Open(ctx, st, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			record(t, l, entry("before", "A81001", []string{"p1"}))
			st.Close()
			if err := l.Record(ctx, entry("while-down", "A81001", []string{"p2"})); err != nil {
				t.Fatalf("Record with the store down: %v, want the entry spooled", err)
			}
			if err := l.Flush(ctx); !fhir.IsKind(err, fhir.EUnavailable) {
				t.Errorf("Flush with the store down: %v, want EUnavailable", err)
			}
			if _, err := l.Search(ctx, audit.Query{Patient: "p2"}); !fhir.IsKind(err, fhir.EUnavailable) {
				t.Errorf("Search with the store down: %v, want EUnavailable", err)
			}
			many := make([]*audit.Entry, audit.MaxBacklog)
			for i := range many {
				many[i] = entry(fmt.Sprintf("bulk-%d", i), "A81001", []string{"p3"})
			}
			if err := l.RecordAll(ctx, many); err != nil {
				t.Fatalf("RecordAll up to the backlog's bound: %v", err)
			}
			if err := l.Record(ctx, entry("over", "A81001", []string{"p4"})); !fhir.IsKind(err, fhir.EUnavailable) {
				t.Errorf("Record past the backlog's bound: %v, want EUnavailable", err)
			}
			l.Close(ctx) // the mover cannot move: the entries stay in the spool

			st = backend.ReopenForTest(t, st)
			l, err = audit.Open(ctx, st, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(ctx)
			want := int64(2 + audit.MaxBacklog)
			if n, err := st.(store.AuditStore).AuditSize(ctx); err != nil || n != want {
				t.Fatalf("log size after reopening %d (%v), want %d", n, err, want)
			}
			got, err := l.Search(ctx, audit.Query{Patient: "p2"})
			if err != nil || len(got) != 1 || got[0].User != "while-down" || got[0].Index != 1 {
				t.Errorf("the entry spooled while the store was down: %v %v", got, err)
			}
			if got, err := l.Search(ctx, audit.Query{Patient: "p4"}); err != nil || len(got) != 0 {
				t.Errorf("the refused entry: %v %v, want none", got, err)
			}
			if r, err := audit.Verify(ctx, st.(store.AuditStore), note.VerifierList(l.Verifier()), nil); err != nil || !r.OK() {
				t.Errorf("verify: %v %v", err, r)
			}
			// A third open moves nothing twice.
			l.Close(ctx)
			l3, err := audit.Open(ctx, st, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l3.Close(ctx)
			if n, err := st.(store.AuditStore).AuditSize(ctx); err != nil || n != want {
				t.Errorf("log size after a clean reopen %d (%v), want %d", n, err, want)
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
							if err := l.Flush(ctx); err != nil {
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

// TestSecondProcessOnADataDirectorySignsButRecordsNothing: an admin command
// opening the log of a data directory whose node runs (and holds its
// spool) can sign a checkpoint of what the log holds, but cannot record.
func TestSecondProcessOnADataDirectorySignsButRecordsNothing(t *testing.T) {
	b := backend.ForTests(t)[0]
	ctx := context.Background()
	l, st, dir := openLog(t, b)
	record(t, l, entry("u", "A81001", []string{"p1"}))
	second, err := audit.Open(ctx, st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close(ctx)
	if err := second.Record(ctx, entry("u", "A81001", []string{"p1"})); !fhir.IsKind(err, fhir.EUnavailable) {
		t.Errorf("Record beside the running node: %v, want EUnavailable", err)
	}
	if c, err := second.Checkpoint(ctx); err != nil || c.Size != 1 {
		t.Errorf("Checkpoint beside the running node: %v %v, want one of 1 entry", c, err)
	}
	if err := l.Record(ctx, entry("u", "A81001", []string{"p1"})); err != nil {
		t.Errorf("the node's own Record: %v", err)
	}
}

// TestRecordWaitsForABusyMover: with the mover far behind but its store
// well, Record waits for it rather than failing, and every entry lands.
func TestRecordWaitsForABusyMover(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			l, st, _ := openLog(t, b)
			many := make([]*audit.Entry, audit.MaxBacklog)
			for i := range many {
				many[i] = entry(fmt.Sprintf("bulk-%d", i), "A81001", []string{"p3"})
			}
			if err := l.RecordAll(ctx, many); err != nil {
				t.Fatal(err)
			}
			// The backlog is at its bound now: this one waits for a move.
			if err := l.Record(ctx, entry("next", "A81001", []string{"p4"})); err != nil {
				t.Fatalf("Record behind a full backlog: %v, want it to wait and succeed", err)
			}
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := st.(store.AuditStore).AuditSize(ctx); err != nil || n != int64(audit.MaxBacklog+1) {
				t.Errorf("log size %d (%v), want %d", n, err, audit.MaxBacklog+1)
			}
		})
	}
}
