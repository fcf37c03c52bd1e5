package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// RunAudit runs the conformance suite of store.AuditStore, the audit log's
// tables, against a backend that keeps one. The hashes here are arbitrary
// bytes: the store keeps them, package audit computes them.
func RunAudit(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	for _, tc := range auditTests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, h)
		})
	}
}

var auditTests = []struct {
	name string
	fn   func(t *testing.T, h Harness)
}{
	{"an empty log has size 0, no entries and no checkpoints", testAuditEmpty},
	{"appended entries and hashes read back as written, in index order, with their person-view rows", testAuditRoundTrip},
	{"an append at an index other than the size is refused and writes nothing", testAuditGap},
	{"an error from the append function writes nothing and is returned unchanged", testAuditRollback},
	{"a hash never stored is ENotFound", testAuditMissingHash},
	{"concurrent appends serialise: each sees the size the previous one left", testAuditConcurrent},
	{"checkpoints list smallest first, and latest alone", testAuditCheckpoints},
	{"the person's own view leaves out restricted entries, newest first", testAuditPersonView},
	{"appended entries survive Close and reopen", testAuditReopen},
}

func auditStore(t *testing.T, h Harness) (store.Store, store.AuditStore) {
	t.Helper()
	s := h.Open(t)
	as, ok := s.(store.AuditStore)
	if !ok {
		t.Fatalf("%T does not implement store.AuditStore", s)
	}
	return s, as
}

func auditRow(i int64, patients ...string) *store.AuditEntry {
	return &store.AuditEntry{Index: i, Time: 1_700_000_000_000_000 + i, User: fmt.Sprintf("u%d", i%2), Role: "clinician",
		Org: "A81001", Client: "portal", Patients: patients, Action: "R", Outcome: "0",
		Event: []byte(fmt.Sprintf(`{"resourceType":"AuditEvent","n":%d}`, i))}
}

func hashOf(id int64) []byte {
	h := make([]byte, 32)
	for i := range h {
		h[i] = byte(id + int64(i))
	}
	return h
}

// appendRows appends rows after reading the size, with one hash each.
func appendRows(ctx context.Context, as store.AuditStore, rows ...*store.AuditEntry) error {
	return as.AppendAudit(ctx, func(tx store.AuditTx) error {
		n, err := tx.Size(ctx)
		if err != nil {
			return err
		}
		var hs [][]byte
		for i, r := range rows {
			r.Index = n + int64(i)
			hs = append(hs, hashOf(n+int64(i)))
		}
		return tx.Append(ctx, rows, n, hs)
	})
}

func testAuditEmpty(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	if n, err := as.AuditSize(ctx); err != nil || n != 0 {
		t.Errorf("size %d, %v; want 0", n, err)
	}
	if es, err := as.AuditEntries(ctx, 0, 10); err != nil || len(es) != 0 {
		t.Errorf("entries %v, %v; want none", es, err)
	}
	if cs, err := as.AuditCheckpoints(ctx, true); err != nil || len(cs) != 0 {
		t.Errorf("checkpoints %v, %v; want none", cs, err)
	}
}

func testAuditRoundTrip(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	a, b := auditRow(0, "p2", "p1"), auditRow(1)
	b.Flags, b.Restricted = []string{"break-glass", "labelled"}, true
	if err := appendRows(ctx, as, a, b); err != nil {
		t.Fatal(err)
	}
	c := auditRow(2, "p1")
	err := as.AppendAudit(ctx, func(tx store.AuditTx) error {
		// The transaction sees its own hashes and those stored before.
		if got, err := tx.Hashes(ctx, []int64{1, 0}); err != nil || string(got[0]) != string(hashOf(1)) || string(got[1]) != string(hashOf(0)) {
			return fmt.Errorf("Tx.Hashes before append: %v", err)
		}
		if err := tx.Append(ctx, []*store.AuditEntry{c}, 2, [][]byte{hashOf(2)}); err != nil {
			return err
		}
		if got, err := tx.Hashes(ctx, []int64{2}); err != nil || string(got[0]) != string(hashOf(2)) {
			return fmt.Errorf("Tx.Hashes of its own append: %v", err)
		}
		if n, err := tx.Size(ctx); err != nil || n != 3 {
			return fmt.Errorf("Tx.Size after its own append: %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := as.AuditSize(ctx); err != nil || n != 3 {
		t.Errorf("size %d, %v; want 3", n, err)
	}
	got, err := as.AuditEntries(ctx, 0, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("entries %v, %v; want 3", got, err)
	}
	wantIndexed := [][]store.AuditIndexRow{{{Patient: "p1"}, {Patient: "p2"}}, nil, {{Patient: "p1"}}}
	for i, want := range []*store.AuditEntry{a, b, c} {
		g := got[i]
		if g.Index != want.Index || g.Time != want.Time || g.User != want.User || g.Role != want.Role || g.Org != want.Org ||
			g.Client != want.Client || fmt.Sprint(g.Patients) != fmt.Sprint(want.Patients) || g.Action != want.Action ||
			g.Outcome != want.Outcome || fmt.Sprint(g.Flags) != fmt.Sprint(want.Flags) || g.Restricted != want.Restricted ||
			string(g.Event) != string(want.Event) {
			t.Errorf("entry %d read back as %+v, want %+v", i, g, want)
		}
		if fmt.Sprint(g.Indexed) != fmt.Sprint(wantIndexed[i]) {
			t.Errorf("entry %d person-view rows %v, want %v", i, g.Indexed, wantIndexed[i])
		}
	}
	if got, err := as.AuditEntries(ctx, 1, 1); err != nil || len(got) != 1 || got[0].Index != 1 {
		t.Errorf("AuditEntries(1, 1): %v, %v", got, err)
	}
	hs, err := as.AuditHashes(ctx, []int64{2, 0, 2})
	if err != nil || string(hs[0]) != string(hashOf(2)) || string(hs[1]) != string(hashOf(0)) || string(hs[2]) != string(hashOf(2)) {
		t.Errorf("AuditHashes(2, 0, 2): %v", err)
	}
}

func testAuditGap(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	if err := appendRows(ctx, as, auditRow(0)); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []int64{0, 2} {
		err := as.AppendAudit(ctx, func(tx store.AuditTx) error {
			return tx.Append(ctx, []*store.AuditEntry{auditRow(idx)}, 1, [][]byte{hashOf(1)})
		})
		if err == nil {
			t.Errorf("an append at %d to a log of 1 succeeded", idx)
		}
	}
	if n, _ := as.AuditSize(ctx); n != 1 {
		t.Errorf("size %d after refused appends, want 1", n)
	}
}

func testAuditRollback(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	boom := errors.New("boom")
	err := as.AppendAudit(ctx, func(tx store.AuditTx) error {
		if err := tx.Append(ctx, []*store.AuditEntry{auditRow(0, "p1")}, 0, [][]byte{hashOf(0)}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the function's error", err)
	}
	if n, _ := as.AuditSize(ctx); n != 0 {
		t.Errorf("size %d after a failed append, want 0", n)
	}
	if es, _ := as.AuditEntries(ctx, 0, 10); len(es) != 0 {
		t.Errorf("entries after a failed append: %v", es)
	}
	if _, err := as.AuditHashes(ctx, []int64{0}); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("hash after a failed append: %v, want ENotFound", err)
	}
	if es, _ := as.SearchAudit(ctx, store.AuditQuery{Patient: "p1", Limit: 10}); len(es) != 0 {
		t.Errorf("person view after a failed append: %v", es)
	}
}

func testAuditMissingHash(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	if err := appendRows(ctx, as, auditRow(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := as.AuditHashes(ctx, []int64{0, 5}); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("got %v, want ENotFound", err)
	}
}

func testAuditConcurrent(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := appendRows(ctx, as, auditRow(0)); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := as.AuditEntries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != workers*each {
		t.Fatalf("%d entries, want %d", len(got), workers*each)
	}
	for i, e := range got {
		if e.Index != int64(i) {
			t.Fatalf("entry %d has index %d: a collision or a gap", i, e.Index)
		}
	}
}

func testAuditCheckpoints(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	for _, n := range []int64{5, 2, 5} {
		if err := as.PutAuditCheckpoint(ctx, &store.AuditCheckpoint{Size: n, Root: hashOf(n), Note: []byte(fmt.Sprintf("note %d", n)), Time: n}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := as.AuditCheckpoints(ctx, false)
	if err != nil || len(all) != 3 || all[0].Size != 2 || all[1].Size != 5 || all[2].Size != 5 {
		t.Fatalf("checkpoints %v, %v; want sizes 2, 5, 5", all, err)
	}
	latest, err := as.AuditCheckpoints(ctx, true)
	if err != nil || len(latest) != 1 || latest[0].Size != 5 || string(latest[0].Note) != "note 5" || string(latest[0].Root) != string(hashOf(5)) {
		t.Errorf("latest %v, %v; want the last of size 5", latest, err)
	}
}

func testAuditPersonView(t *testing.T, h Harness) {
	_, as := auditStore(t, h)
	ctx := ctxT(t)
	r := auditRow(1, "p1")
	r.Restricted = true
	if err := appendRows(ctx, as, auditRow(0, "p1"), r, auditRow(2, "p1", "p2"), auditRow(3, "p2")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    store.AuditQuery
		want string
	}{
		{store.AuditQuery{Patient: "p1", Limit: 10}, "[2 1 0]"},
		{store.AuditQuery{Patient: "p1", Unrestricted: true, Limit: 10}, "[2 0]"},
		{store.AuditQuery{Patient: "p1", Unrestricted: true, Limit: 1}, "[2]"},
		{store.AuditQuery{Patient: "p1", Unrestricted: true, Before: 2, Limit: 10}, "[0]"},
		{store.AuditQuery{Patient: "p2", Limit: 10}, "[3 2]"},
	} {
		checkPersonView(t, as, tc.q, tc.want)
	}
	// Thousands of entries later, a person seen now and then: their view
	// pages newest first across the whole log, whatever a store keeps it in.
	seen := map[int64]bool{4: true, 4095: true, 4096: true, 4097: true, 9000: true, 12002: true}
	var rows []*store.AuditEntry
	for i := int64(4); i < 12100; i++ {
		patients := []string{"p8"}
		if seen[i] {
			patients = append(patients, "p3")
		}
		r := auditRow(i, patients...)
		r.Restricted = i == 4096
		if rows = append(rows, r); len(rows) == 1000 {
			if err := appendRows(ctx, as, rows...); err != nil {
				t.Fatal(err)
			}
			rows = nil
		}
	}
	if err := appendRows(ctx, as, rows...); err != nil {
		t.Fatal(err)
	}
	const t0 = 1_700_000_000_000_000 // auditRow's time of entry 0
	for _, tc := range []struct {
		q    store.AuditQuery
		want string
	}{
		{store.AuditQuery{Patient: "p3", Limit: 10}, "[12002 9000 4097 4096 4095 4]"},
		{store.AuditQuery{Patient: "p3", Limit: 3}, "[12002 9000 4097]"},
		{store.AuditQuery{Patient: "p3", Before: 4097, Limit: 2}, "[4096 4095]"},
		{store.AuditQuery{Patient: "p3", Before: 4095, Limit: 10}, "[4]"},
		{store.AuditQuery{Patient: "p3", Unrestricted: true, Limit: 10}, "[12002 9000 4097 4095 4]"},
		{store.AuditQuery{Patient: "p3", Since: t0 + 4095, Until: t0 + 9000, Limit: 10}, "[4097 4096 4095]"},
		{store.AuditQuery{Patient: "p1", Limit: 10}, "[2 1 0]"},
		{store.AuditQuery{Patient: "p8", Before: 8, Limit: 3}, "[7 6 5]"},
	} {
		checkPersonView(t, as, tc.q, tc.want)
	}
}

// checkPersonView checks that q finds the entries want lists, in order.
func checkPersonView(t *testing.T, as store.AuditStore, q store.AuditQuery, want string) {
	t.Helper()
	es, err := as.SearchAudit(ctxT(t), q)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, e := range es {
		got = append(got, e.Index)
	}
	if fmt.Sprint(got) != want {
		t.Errorf("%+v: got %v, want %s", q, got, want)
	}
}

func testAuditReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("no Reopen in the harness")
	}
	s, as := auditStore(t, h)
	ctx := ctxT(t)
	if err := appendRows(ctx, as, auditRow(0, "p1"), auditRow(1)); err != nil {
		t.Fatal(err)
	}
	as = h.Reopen(t, s).(store.AuditStore)
	if n, err := as.AuditSize(ctx); err != nil || n != 2 {
		t.Errorf("size after reopen %d, %v; want 2", n, err)
	}
	if err := appendRows(ctx, as, auditRow(2)); err != nil {
		t.Fatal(err)
	}
	if es, err := as.AuditEntries(ctx, 0, 10); err != nil || len(es) != 3 {
		t.Errorf("entries after reopen and append: %d, %v", len(es), err)
	}
}
