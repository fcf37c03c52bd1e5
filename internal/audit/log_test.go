package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// openLog opens a Log over a fresh store of the backend, with its key in a
// temporary data directory; both are closed when t ends.
func openLog(t *testing.T, b backend.Named) (*audit.Log, store.Store, string) {
	t.Helper()
	st := b.Open(t)
	dir := t.TempDir()
	l, err := audit.Open(context.Background(), st, dir, nil)
	if err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l, st, dir
}

func entry(user, org string, patients []string, flags ...string) *audit.Entry {
	return &audit.Entry{
		Time: time.Now(), User: user, Role: "clinician", Org: org, Client: "portal",
		Patients: patients, Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Flags: flags,
		Event: []byte(fmt.Sprintf(`{"resourceType":"AuditEvent","agent":[{"who":{"identifier":{"value":%q}}}]}`, user)),
	}
}

func record(t *testing.T, l *audit.Log, e *audit.Entry) *audit.Entry {
	t.Helper()
	if err := l.Record(context.Background(), e); err != nil {
		t.Fatalf("Record: %v", err)
	}
	if err := l.Flush(context.Background()); err != nil { // for e.Index
		t.Fatalf("Flush: %v", err)
	}
	return e
}

func indexes(es []*audit.Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Index
	}
	return out
}

func TestRecordAndSearch(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, _, _ := openLog(t, b)
			ctx := context.Background()
			t0 := time.Now().Add(-time.Hour)
			e0 := entry("dr-a", "A81001", []string{"p1"})
			e0.Time = t0
			record(t, l, e0)
			record(t, l, entry("dr-b", "A81002", []string{"p1", "p2"}, audit.FlagBreakGlass))
			r := entry("dr-c", "A81001", []string{"p1"})
			r.Restricted = true
			record(t, l, r)
			record(t, l, entry("dr-a", "A81001", []string{"p2"}))
			record(t, l, entry("", "", nil)) // a system client, no person

			tests := []struct {
				name string
				q    audit.Query
				want []int64
			}{
				{"a person's entries, newest first", audit.Query{Patient: "p1"}, []int64{2, 1, 0}},
				{"the person's own view leaves out restricted entries", audit.Query{Patient: "p1", Unrestricted: true}, []int64{1, 0}},
				{"by user", audit.Query{User: "dr-a"}, []int64{3, 0}},
				{"by organisation", audit.Query{Org: "A81001"}, []int64{3, 2, 0}},
				{"flagged only", audit.Query{Flagged: true}, []int64{1}},
				{"flagged for a person", audit.Query{Patient: "p2", Flagged: true}, []int64{1}},
				{"user and person together", audit.Query{User: "dr-a", Patient: "p2"}, []int64{3}},
				{"time range: since", audit.Query{Since: t0.Add(time.Minute)}, []int64{4, 3, 2, 1}},
				{"time range: until", audit.Query{Until: t0.Add(time.Minute)}, []int64{0}},
				{"everything, newest first", audit.Query{}, []int64{4, 3, 2, 1, 0}},
				{"paging: before and limit", audit.Query{Before: 3, Limit: 2}, []int64{2, 1}},
				{"paging a person's view", audit.Query{Patient: "p1", Before: 2, Limit: 1}, []int64{1}},
				{"an unknown person has no entries", audit.Query{Patient: "nobody"}, []int64{}},
			}
			for _, tc := range tests {
				got, err := l.Search(ctx, tc.q)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if fmt.Sprint(indexes(got)) != fmt.Sprint(tc.want) {
					t.Errorf("%s: got %v, want %v", tc.name, indexes(got), tc.want)
				}
			}
			got, err := l.Search(ctx, audit.Query{Patient: "p2", Flagged: true})
			if err != nil || len(got) != 1 {
				t.Fatalf("search: %v %v", got, err)
			}
			g := got[0]
			want := entry("dr-b", "A81002", []string{"p1", "p2"}, audit.FlagBreakGlass)
			if g.User != want.User || g.Org != want.Org || g.Role != want.Role || g.Client != want.Client ||
				fmt.Sprint(g.Patients) != fmt.Sprint(want.Patients) || fmt.Sprint(g.Flags) != fmt.Sprint(want.Flags) ||
				string(g.Event) != string(want.Event) || g.Action != want.Action || g.Outcome != want.Outcome {
				t.Errorf("entry read back as %+v, want the fields of %+v", g, want)
			}
			if !got[0].Time.Equal(e0.Time.Truncate(time.Microsecond)) && got[0].Time.Before(t0) {
				t.Errorf("time read back as %v", got[0].Time)
			}
		})
	}
}

func TestRecordRejectsMalformedEntries(t *testing.T) {
	l, _, _ := openLog(t, backend.ForTests(t)[0])
	bad := map[string]*audit.Entry{
		"unknown action":        {Action: "X", Outcome: audit.OutcomeSuccess, Event: []byte(`{}`)},
		"unknown outcome":       {Action: audit.ActionRead, Outcome: "1", Event: []byte(`{}`)},
		"event not JSON":        {Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Event: []byte(`{`)},
		"no event":              {Action: audit.ActionRead, Outcome: audit.OutcomeSuccess},
		"patient id with space": {Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Patients: []string{"a b"}, Event: []byte(`{}`)},
		"empty flag":            {Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Flags: []string{""}, Event: []byte(`{}`)},
	}
	for name, e := range bad {
		if err := l.Record(context.Background(), e); err == nil {
			t.Errorf("%s: recorded, want an error", name)
		}
	}
	// A patient id no FHIR id can be is the client's mistake: 4xx, not 500.
	e := entry("u", "A81001", []string{"a b"})
	if err := l.Record(context.Background(), e); !fhir.IsKind(err, fhir.EInvalid) {
		t.Errorf("patient id with a space: %v, want EInvalid", err)
	}
}

// TestGroupCommit records from many goroutines at once: every entry gets a
// distinct leaf number, none is lost, the numbers run 0..n-1 without a gap,
// and fewer spool writes than entries were made.
func TestGroupCommit(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, st, _ := openLog(t, b)
			const workers, each = 32, 20
			var wg sync.WaitGroup
			var mu sync.Mutex
			var all []*audit.Entry
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						e := entry(fmt.Sprintf("u%d", w), "A81001", []string{fmt.Sprintf("p%d", i)})
						if err := l.Record(context.Background(), e); err != nil {
							t.Errorf("Record: %v", err)
							return
						}
						mu.Lock()
						all = append(all, e)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if err := l.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			seen := map[int64]bool{}
			for _, e := range all {
				if seen[e.Index] {
					t.Errorf("leaf number %d given twice", e.Index)
				}
				seen[e.Index] = true
			}
			n := int64(workers * each)
			for i := range n {
				if !seen[i] {
					t.Errorf("leaf number %d never given", i)
				}
			}
			size, err := st.(store.AuditStore).AuditSize(context.Background())
			if err != nil || size != n {
				t.Errorf("log size %d (%v), want %d", size, err, n)
			}
			if got := audit.Batches(l); got >= n {
				t.Errorf("%d spool writes for %d entries: no group commit", got, n)
			} else {
				t.Logf("%d entries in %d spool writes and %d transactions", n, got, audit.Moves(l))
			}
			if r, err := audit.Verify(context.Background(), st.(store.AuditStore), note.VerifierList(l.Verifier()), nil); err != nil || !r.OK() {
				t.Errorf("verify after concurrent records: %v %v", err, r)
			}
		})
	}
}

// TestProofs checks inclusion and consistency proofs against signed
// checkpoints with tlog's own checkers.
func TestProofs(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, _, _ := openLog(t, b)
			ctx := context.Background()
			var es []*audit.Entry
			for i := range 7 {
				es = append(es, record(t, l, entry(fmt.Sprintf("u%d", i), "A81001", []string{"p1"})))
			}
			old, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				es = append(es, record(t, l, entry(fmt.Sprintf("v%d", i), "A81002", nil)))
			}
			cur, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if old.Size != 7 || cur.Size != 17 {
				t.Fatalf("checkpoint sizes %d, %d; want 7, 17", old.Size, cur.Size)
			}
			// An outside party opens the checkpoints with the node's verifier key.
			v, err := note.NewVerifier(l.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*audit.Checkpoint{old, cur} {
				if _, err := audit.ParseCheckpoint(c.Note, note.VerifierList(v)); err != nil {
					t.Fatalf("checkpoint does not open with the verifier key: %v", err)
				}
			}
			for _, e := range es {
				for _, c := range []*audit.Checkpoint{old, cur} {
					if e.Index >= c.Size {
						continue
					}
					p, err := l.InclusionProof(ctx, e.Index, c.Size)
					if err != nil {
						t.Fatal(err)
					}
					if err := tlog.CheckRecord(p, c.Size, c.Root, e.Index, tlog.RecordHash(audit.LeafData(e))); err != nil {
						t.Errorf("entry %d in tree %d: %v", e.Index, c.Size, err)
					}
					// The proof must not fit another entry.
					other := *e
					other.User = "someone-else"
					if tlog.CheckRecord(p, c.Size, c.Root, e.Index, tlog.RecordHash(audit.LeafData(&other))) == nil {
						t.Errorf("entry %d: the proof also fits an altered entry", e.Index)
					}
				}
			}
			p, err := l.ConsistencyProof(ctx, old.Size, cur.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, cur.Size, cur.Root, old.Size, old.Root); err != nil {
				t.Errorf("consistency 7 -> 17: %v", err)
			}
			for _, bad := range [][2]int64{{-1, 3}, {5, 3}, {0, 18}} {
				if _, err := l.ConsistencyProof(ctx, bad[0], bad[1]); err == nil {
					t.Errorf("consistency proof %v: no error", bad)
				}
			}
			if _, err := l.InclusionProof(ctx, 17, 17); err == nil {
				t.Errorf("inclusion proof of an entry beyond the tree: no error")
			}
		})
	}
}

// TestRecordAllKeepsEntriesTogether: the entries of one RecordAll (a
// Bundle's, with the interaction's own) land at consecutive indexes in
// their order, whatever other callers record at the same time, also when
// they are more than one transaction's bound; one invalid entry records
// none of them.
func TestRecordAllKeepsEntriesTogether(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, st, _ := openLog(t, b)
			ctx := context.Background()
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := l.Record(ctx, entry(fmt.Sprintf("other%d", w), "A81001", []string{"p1"})); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			for _, n := range []int{3, 300} {
				es := make([]*audit.Entry, n)
				for i := range es {
					es[i] = entry(fmt.Sprintf("bundle-%d", i), "A81001", []string{"p2"})
				}
				if err := l.RecordAll(ctx, es); err != nil {
					t.Fatal(err)
				}
				if err := l.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				for i, e := range es {
					if e.Index != es[0].Index+int64(i) {
						t.Fatalf("RecordAll of %d: entry %d at index %d, the first at %d", n, i, e.Index, es[0].Index)
					}
				}
			}
			close(stop)
			wg.Wait()
			if err := l.Flush(ctx); err != nil { // the others' entries, moved
				t.Fatal(err)
			}

			size, err := st.(store.AuditStore).AuditSize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			bad := []*audit.Entry{entry("u", "A81001", []string{"p3"}), entry("u", "A81001", []string{"not an id"})}
			if err := l.RecordAll(ctx, bad); !fhir.IsKind(err, fhir.EInvalid) {
				t.Fatalf("RecordAll with an invalid patient id: %v", err)
			}
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if after, _ := st.(store.AuditStore).AuditSize(ctx); after != size {
				t.Fatalf("an invalid RecordAll changed the size from %d to %d", size, after)
			}
			if got, err := l.Search(ctx, audit.Query{Patient: "p3"}); err != nil || len(got) != 0 {
				t.Fatalf("an invalid RecordAll recorded %d entries (%v)", len(got), err)
			}
		})
	}
}
