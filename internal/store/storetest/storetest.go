// Package storetest is the one conformance suite of the storage contract
// (package store). Every backend's tests call Run, so SQLite and PostgreSQL
// are held to exactly the same rules; each subtest is named after the rule
// of the contract it checks.
//
// A backend test looks like:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open:   func(t testing.TB) store.Store { ... a new, empty store ... },
//			Reopen: func(t testing.TB, old store.Store) store.Store { ... close old, open the same data ... },
//		})
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Harness tells the suite how to get stores of the backend under test.
type Harness struct {
	// Open returns a new, empty store. It must register a t.Cleanup that
	// closes it; the suite may also close a store itself, so Close must
	// tolerate being called twice.
	Open func(t testing.TB) store.Store
	// Reopen closes old (which Open returned) and opens the same data
	// again, as a restarted process would. Nil skips the tests that need it.
	Reopen func(t testing.TB, old store.Store) store.Store
}

// Run runs the whole conformance suite against the backend h describes.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, h)
		})
	}
}

var tests = []struct {
	name string
	fn   func(t *testing.T, h Harness)
}{
	{"read of a missing resource is ENotFound", testReadMissing},
	{"versions are numbered 1..n and each reads back as written", testVersions},
	{"Put with a VersionID other than latest+1 is EConflict and writes nothing", testVersionConflict},
	{"a deletion marker reads back Deleted with nil Body and older versions still vread", testDelete},
	{"Write is atomic: an error after several Puts leaves nothing and is returned unchanged", testWriteAtomic},
	{"a panic in a Write function is EInternal, writes nothing and leaves the store usable", testWritePanic},
	{"a failing Write does not affect concurrent Writes", testFailingWriteIsolated},
	{"a Write with a cancelled context writes nothing", testWriteCancelled},
	{"Tx.Read sees the transaction's own writes", testTxReadOwnWrites},
	{"Tx.Search sees the transaction's own writes", testTxSearchOwnWrites},
	{"history lists system, type and instance versions newest first", testHistoryOrder},
	{"history Since keeps versions updated at or after it", testHistorySince},
	{"history Since holds when lastUpdated is not in write order", testHistorySinceUnordered},
	{"history Before pages without skips or repeats while writes happen between pages", testHistoryPaging},
	{"search by _id", testSearchID},
	{"search by token in the code, system|code, |code and system| forms", testSearchTokenForms},
	{"search ORs conditions within a clause and ANDs clauses", testSearchOrAnd},
	{"search filters by one type, several types or none", testSearchTypes},
	{"search pages by cursor without skips or repeats while rows change between pages", testSearchPaging},
	{"search Total counts every match over all pages, -1 when not asked", testSearchTotal},
	{"search rejects an invalid cursor as EInvalid", testSearchBadCursor},
	{"index rows are replaced on update and removed on delete", testIndexReplaced},
	{"every index kind is stored without breaking the write", testIndexKinds},
	{"an access filter passes exactly what its sources and denied labels allow", testAccessFixture},
	{"an access filter follows a resource's source and labels through update, delete, re-create and reindex", testAccessFollowsWrites},
	{"an access filter's labels are tested alike with and without a source, whatever their characters", testAccessLabelsWithSources},
	{"a filter's kept SQL answers only that filter, however it differs from others or changes after use", testFilterReuse},
	{"a search by a code and a date finds exactly what each prefix admits (the date span only narrows)", testDateSpanFixture},
	{"the date span on a resource's token rows follows its dates through update and delete", testDateSpanFollowsWrites},
	{"Secret creates once and returns the same value to every caller", testSecret},
	{"concurrent Read+Put increments of one resource all land", testConcurrentIncrements},
	{"Seq is strictly increasing across and within Writes", testSeq},
	{"a version becomes visible only after every version with a smaller Seq", testSeqVisibility},
	{"Write and Read after Close fail cleanly", testClosed},
	{"acknowledged writes survive Close and reopen", testReopen},
	{"KV reads back what PutKV wrote, versioned, per bucket", testKVRoundTrip},
	{"PutKV with a version is a compare-and-swap: a stale version is EConflict and writes nothing", testKVCompareAndSwap},
	{"PutKVIfAbsent creates once: of racing creators exactly one wins", testKVIfAbsent},
	{"an expired KV entry is absent to reads and lists and is replaced by a create", testKVExpiry},
	{"DeleteKV removes and ListKV lists a bucket by prefix in key order", testKVDeleteList},
	{"KV entries survive Close and reopen", testKVReopen},
}

// t0 is a millisecond-precision instant, like meta.lastUpdated.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func body(typ, id string, v int64, extra string) []byte {
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"},"x":%q}`, typ, id, v, extra)
}

// put writes one version in its own Write.
func put(t testing.TB, s store.Store, p *store.Put) {
	t.Helper()
	if p.LastUpdated.IsZero() {
		p.LastUpdated = t0
	}
	if p.Body == nil && !p.Deleted {
		p.Body = body(p.Type, p.ID, p.VersionID, "")
	}
	if err := s.Write(ctxT(t), func(tx store.Tx) error { return tx.Put(ctxT(t), p) }); err != nil {
		t.Fatalf("Put %s/%s v%d: %v", p.Type, p.ID, p.VersionID, err)
	}
}

// create writes version 1 of typ/id carrying the given tokens.
func create(t testing.TB, s store.Store, typ, id string, tokens ...store.Token) {
	t.Helper()
	put(t, s, &store.Put{Type: typ, ID: id, VersionID: 1, Index: store.Index{Tokens: tokens}})
}

func tok(param, system, code string) store.Token {
	return store.Token{Param: param, System: system, Code: code}
}

func wantKind(t testing.TB, what string, err error, k fhir.Kind) {
	t.Helper()
	if !fhir.IsKind(err, k) {
		t.Fatalf("%s: got error %v (kind %q), want kind %q", what, err, fhir.KindOf(err), k)
	}
}

func read(t testing.TB, s store.Store, typ, id string) *store.Version {
	t.Helper()
	v, err := s.Read(ctxT(t), typ, id)
	if err != nil {
		t.Fatalf("Read %s/%s: %v", typ, id, err)
	}
	return v
}

// keys renders versions as "Type/id/_history/n" for comparisons.
func keys(vs []*store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%s/%s/_history/%d", v.Type, v.ID, v.VersionID)
	}
	return out
}

// ids renders versions as "Type/id".
func ids(vs []*store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Type + "/" + v.ID
	}
	return out
}

func search(t testing.TB, s store.Store, q *store.Query) *store.Result {
	t.Helper()
	r, err := s.Search(ctxT(t), q)
	if err != nil {
		t.Fatalf("Search %+v: %v", q, err)
	}
	return r
}

// SearchIDs returns the sorted Type/id of every match, following cursors.
func SearchIDs(t testing.TB, s store.Store, q store.Query) []string {
	t.Helper()
	var out []string
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("search: more than 1000 pages")
		}
		r := search(t, s, &q)
		out = append(out, ids(r.Versions)...)
		if r.Next == "" {
			break
		}
		q.Cursor = r.Next
	}
	slices.Sort(out)
	return out
}

func equalStrings(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func testReadMissing(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	_, err := s.Read(ctx, "Patient", "nope")
	wantKind(t, "Read of a resource never written", err, fhir.ENotFound)
	_, err = s.VRead(ctx, "Patient", "nope", 1)
	wantKind(t, "VRead of a resource never written", err, fhir.ENotFound)
	_, err = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "nope"})
	wantKind(t, "instance History of a resource never written", err, fhir.ENotFound)

	create(t, s, "Patient", "p1")
	_, err = s.VRead(ctx, "Patient", "p1", 2)
	wantKind(t, "VRead of a version not yet written", err, fhir.ENotFound)
	_, err = s.Read(ctx, "Observation", "p1")
	wantKind(t, "Read of the same id under another type", err, fhir.ENotFound)
}

func testVersions(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	// Bodies are kept byte for byte, whitespace and key order included.
	bodies := [][]byte{
		[]byte(`{"resourceType":"Patient","id":"p1","active":true}`),
		[]byte("{ \"resourceType\" : \"Patient\", \"id\":\"p1\", \"name\":[{\"family\":\"Ærø\"}] }"),
		[]byte(`{"resourceType":"Patient","id":"p1","b":1,"a":2}`),
	}
	for i, b := range bodies {
		put(t, s, &store.Put{Type: "Patient", ID: "p1", VersionID: int64(i + 1), LastUpdated: t0.Add(time.Duration(i) * time.Second), Body: b})
	}
	v := read(t, s, "Patient", "p1")
	if v.VersionID != 3 || v.Deleted || string(v.Body) != string(bodies[2]) || v.Type != "Patient" || v.ID != "p1" {
		t.Errorf("Read: got %s/%s v%d deleted=%v body %s, want Patient/p1 v3 with the third body", v.Type, v.ID, v.VersionID, v.Deleted, v.Body)
	}
	if !v.LastUpdated.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("Read: LastUpdated %v, want %v", v.LastUpdated, t0.Add(2*time.Second))
	}
	var prevSeq int64
	for i, b := range bodies {
		v, err := s.VRead(ctx, "Patient", "p1", int64(i+1))
		if err != nil {
			t.Fatalf("VRead v%d: %v", i+1, err)
		}
		if v.VersionID != int64(i+1) || string(v.Body) != string(b) {
			t.Errorf("VRead v%d: got v%d body %s, want body %s", i+1, v.VersionID, v.Body, b)
		}
		if !v.LastUpdated.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Errorf("VRead v%d: LastUpdated %v, want %v", i+1, v.LastUpdated, t0.Add(time.Duration(i)*time.Second))
		}
		if v.Seq <= prevSeq {
			t.Errorf("VRead v%d: Seq %d not above the previous version's %d", i+1, v.Seq, prevSeq)
		}
		prevSeq = v.Seq
	}
	if v.Seq != prevSeq {
		t.Errorf("Read Seq %d, want the latest version's %d", v.Seq, prevSeq)
	}
}

func testVersionConflict(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		v    int64
	}{{"a new resource must start at 1, not 2", 2}, {"a new resource must start at 1, not 0", 0}} {
		err := s.Write(ctx, func(tx store.Tx) error {
			return tx.Put(ctx, &store.Put{Type: "Patient", ID: "new", VersionID: tc.v, LastUpdated: t0, Body: body("Patient", "new", tc.v, "")})
		})
		wantKind(t, tc.name, err, fhir.EConflict)
	}
	_, err := s.Read(ctx, "Patient", "new")
	wantKind(t, "Read after rejected creates", err, fhir.ENotFound)

	create(t, s, "Patient", "p1", tok("identifier", "s", "1"))
	for _, tc := range []struct {
		name string
		v    int64
	}{{"repeating the latest version", 1}, {"skipping a version", 3}} {
		err := s.Write(ctx, func(tx store.Tx) error {
			return tx.Put(ctx, &store.Put{Type: "Patient", ID: "p1", VersionID: tc.v, LastUpdated: t0, Body: body("Patient", "p1", tc.v, "clash"),
				Index: store.Index{Tokens: []store.Token{tok("identifier", "s", "2")}}})
		})
		wantKind(t, tc.name, err, fhir.EConflict)
	}
	v := read(t, s, "Patient", "p1")
	if v.VersionID != 1 || string(v.Body) != string(body("Patient", "p1", 1, "")) {
		t.Errorf("after conflicts: got v%d %s, want v1 unchanged", v.VersionID, v.Body)
	}
	got := SearchIDs(t, s, store.Query{Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "s", Code: "2"}}}})
	equalStrings(t, "index rows of the rejected version", got, nil)
}

func testDelete(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "p1", tok("identifier", "s", "1"))
	put(t, s, &store.Put{Type: "Patient", ID: "p1", VersionID: 2, Deleted: true, LastUpdated: t0.Add(time.Second)})
	v := read(t, s, "Patient", "p1")
	if !v.Deleted || v.Body != nil || v.VersionID != 2 {
		t.Errorf("Read after delete: got v%d deleted=%v body %q, want v2 deleted with nil body", v.VersionID, v.Deleted, v.Body)
	}
	old, err := s.VRead(ctx, "Patient", "p1", 1)
	if err != nil || old.Deleted || string(old.Body) != string(body("Patient", "p1", 1, "")) {
		t.Errorf("VRead v1 after delete: got %+v, %v; want the original body", old, err)
	}
	dv, err := s.VRead(ctx, "Patient", "p1", 2)
	if err != nil || !dv.Deleted || dv.Body != nil {
		t.Errorf("VRead of the deletion marker: got %+v, %v; want Deleted with nil body", dv, err)
	}
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "history after delete", keys(hist), []string{"Patient/p1/_history/2", "Patient/p1/_history/1"})
	if len(hist) == 2 && (!hist[0].Deleted || hist[0].Body != nil) {
		t.Errorf("history: the deletion marker came back as deleted=%v body %q", hist[0].Deleted, hist[0].Body)
	}
	// A deleted resource can be written again (version 3).
	put(t, s, &store.Put{Type: "Patient", ID: "p1", VersionID: 3, LastUpdated: t0.Add(2 * time.Second)})
	if v := read(t, s, "Patient", "p1"); v.Deleted || v.VersionID != 3 {
		t.Errorf("Read after re-create: got v%d deleted=%v, want v3 live", v.VersionID, v.Deleted)
	}
}

func testWriteAtomic(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "existing", tok("identifier", "s", "old"))
	boom := errors.New("boom")
	err := s.Write(ctx, func(tx store.Tx) error {
		for i := range 5 {
			id := fmt.Sprintf("n%d", i)
			if err := tx.Put(ctx, &store.Put{Type: "Observation", ID: id, VersionID: 1, LastUpdated: t0, Body: body("Observation", id, 1, ""),
				Index: store.Index{Tokens: []store.Token{tok("code", "s", "c")}}}); err != nil {
				return err
			}
		}
		if err := tx.Put(ctx, &store.Put{Type: "Patient", ID: "existing", VersionID: 2, LastUpdated: t0, Body: body("Patient", "existing", 2, ""),
			Index: store.Index{Tokens: []store.Token{tok("identifier", "s", "new")}}}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Write: got %v, want the function's own error value unchanged", err)
	}
	for i := range 5 {
		_, err := s.Read(ctx, "Observation", fmt.Sprintf("n%d", i))
		wantKind(t, "Read of a resource from the aborted Write", err, fhir.ENotFound)
	}
	if v := read(t, s, "Patient", "existing"); v.VersionID != 1 {
		t.Errorf("aborted update: Patient/existing is at v%d, want v1", v.VersionID)
	}
	equalStrings(t, "search for the aborted write's token",
		SearchIDs(t, s, store.Query{Clauses: []store.Clause{{{Kind: store.CondToken, Param: "code", AnySystem: true, Code: "c"}}}}), nil)
	equalStrings(t, "search for the old token after the aborted update",
		SearchIDs(t, s, store.Query{Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "s", Code: "old"}}}}), []string{"Patient/existing"})
	hist, err := s.History(ctx, store.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "system history after the aborted Write", keys(hist), []string{"Patient/existing/_history/1"})
}

func testWritePanic(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Write let the panic escape: %v", p)
			}
		}()
		err = s.Write(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, &store.Put{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: t0, Body: body("Patient", "p1", 1, "")}); err != nil {
				return err
			}
			panic("bug in the engine")
		})
	}()
	wantKind(t, "Write whose function panics", err, fhir.EInternal)
	_, err = s.Read(ctx, "Patient", "p1")
	wantKind(t, "Read of the panicking Write's resource", err, fhir.ENotFound)
	create(t, s, "Patient", "p2")
	read(t, s, "Patient", "p2")
}

func testFailingWriteIsolated(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("p%d", i)
			errs[i] = s.Write(ctx, func(tx store.Tx) error {
				if err := tx.Put(ctx, &store.Put{Type: "Patient", ID: id, VersionID: 1, LastUpdated: t0, Body: body("Patient", id, 1, "")}); err != nil {
					return err
				}
				if i%2 == 1 {
					return fhir.Errorf(fhir.EUnprocessable, "", "odd %d", i)
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i := range n {
		id := fmt.Sprintf("p%d", i)
		_, rerr := s.Read(ctx, "Patient", id)
		if i%2 == 1 {
			wantKind(t, "the failing Write "+id, errs[i], fhir.EUnprocessable)
			wantKind(t, "Read of the failing Write's "+id, rerr, fhir.ENotFound)
		} else {
			if errs[i] != nil || rerr != nil {
				t.Errorf("succeeding Write %s: write error %v, read error %v; want both nil", id, errs[i], rerr)
			}
		}
	}
}

func testWriteCancelled(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, func(tx store.Tx) error {
		return tx.Put(ctx, &store.Put{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: t0, Body: body("Patient", "p1", 1, "")})
	})
	if err == nil {
		t.Fatal("Write with a cancelled context: got nil error")
	}
	_, err = s.Read(ctxT(t), "Patient", "p1")
	wantKind(t, "Read after the cancelled Write", err, fhir.ENotFound)
}

func testTxReadOwnWrites(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "p1")
	err := s.Write(ctx, func(tx store.Tx) error {
		if _, err := tx.Read(ctx, "Patient", "p2"); !fhir.IsKind(err, fhir.ENotFound) {
			return fmt.Errorf("Tx.Read before the Put: got %v, want ENotFound", err)
		}
		for _, p := range []*store.Put{
			{Type: "Patient", ID: "p2", VersionID: 1, LastUpdated: t0, Body: body("Patient", "p2", 1, "")},
			{Type: "Patient", ID: "p1", VersionID: 2, LastUpdated: t0, Body: body("Patient", "p1", 2, "")},
		} {
			if err := tx.Put(ctx, p); err != nil {
				return err
			}
		}
		for _, want := range []struct {
			id string
			v  int64
		}{{"p2", 1}, {"p1", 2}} {
			v, err := tx.Read(ctx, "Patient", want.id)
			if err != nil {
				return fmt.Errorf("Tx.Read %s: %w", want.id, err)
			}
			if v.VersionID != want.v || string(v.Body) != string(body("Patient", want.id, want.v, "")) {
				return fmt.Errorf("Tx.Read %s: got v%d %s, want v%d", want.id, v.VersionID, v.Body, want.v)
			}
		}
		// Version 3 follows the version written in this transaction.
		return tx.Put(ctx, &store.Put{Type: "Patient", ID: "p1", VersionID: 3, LastUpdated: t0, Body: body("Patient", "p1", 3, "")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := read(t, s, "Patient", "p1"); v.VersionID != 3 {
		t.Errorf("after the Write: p1 at v%d, want v3", v.VersionID)
	}
}

func testTxSearchOwnWrites(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "old", tok("identifier", "sys", "A"))
	q := &store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "sys", Code: "A"}}}}
	err := s.Write(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, &store.Put{Type: "Patient", ID: "new", VersionID: 1, LastUpdated: t0, Body: body("Patient", "new", 1, ""),
			Index: store.Index{Tokens: []store.Token{tok("identifier", "sys", "A")}}}); err != nil {
			return err
		}
		// The old resource loses the identifier in this transaction.
		if err := tx.Put(ctx, &store.Put{Type: "Patient", ID: "old", VersionID: 2, LastUpdated: t0, Body: body("Patient", "old", 2, ""),
			Index: store.Index{Tokens: []store.Token{tok("identifier", "sys", "B")}}}); err != nil {
			return err
		}
		r, err := tx.Search(ctx, q)
		if err != nil {
			return err
		}
		if got := ids(r.Versions); !slices.Equal(got, []string{"Patient/new"}) {
			return fmt.Errorf("Tx.Search: got %q, want [Patient/new]", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "Search after the Write", SearchIDs(t, s, *q), []string{"Patient/new"})
}

// historyFixture writes, in this order: Patient/a v1, Observation/o v1,
// Patient/a v2, Patient/b v1, Observation/o v2 (deleted), Patient/a v3,
// each one second after the previous.
func historyFixture(t *testing.T, s store.Store) {
	steps := []store.Put{
		{Type: "Patient", ID: "a", VersionID: 1},
		{Type: "Observation", ID: "o", VersionID: 1},
		{Type: "Patient", ID: "a", VersionID: 2},
		{Type: "Patient", ID: "b", VersionID: 1},
		{Type: "Observation", ID: "o", VersionID: 2, Deleted: true},
		{Type: "Patient", ID: "a", VersionID: 3},
	}
	for i := range steps {
		p := steps[i]
		p.LastUpdated = t0.Add(time.Duration(i) * time.Second)
		put(t, s, &p)
	}
}

func testHistoryOrder(t *testing.T, h Harness) {
	s := h.Open(t)
	historyFixture(t, s)
	for _, tc := range []struct {
		name string
		q    store.HistoryQuery
		want []string
	}{
		{"system history", store.HistoryQuery{}, []string{"Patient/a/_history/3", "Observation/o/_history/2", "Patient/b/_history/1", "Patient/a/_history/2", "Observation/o/_history/1", "Patient/a/_history/1"}},
		{"type history", store.HistoryQuery{Type: "Patient"}, []string{"Patient/a/_history/3", "Patient/b/_history/1", "Patient/a/_history/2", "Patient/a/_history/1"}},
		{"instance history", store.HistoryQuery{Type: "Patient", ID: "a"}, []string{"Patient/a/_history/3", "Patient/a/_history/2", "Patient/a/_history/1"}},
		{"type history of a type never written is empty", store.HistoryQuery{Type: "Encounter"}, nil},
		{"Count limits the page", store.HistoryQuery{Count: 2}, []string{"Patient/a/_history/3", "Observation/o/_history/2"}},
	} {
		got, err := s.History(ctxT(t), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		equalStrings(t, tc.name, keys(got), tc.want)
		for i := 1; i < len(got); i++ {
			if got[i].Seq >= got[i-1].Seq {
				t.Errorf("%s: Seq %d after %d, want descending", tc.name, got[i].Seq, got[i-1].Seq)
			}
		}
	}
}

func testHistorySince(t *testing.T, h Harness) {
	s := h.Open(t)
	historyFixture(t, s)
	for _, tc := range []struct {
		name string
		q    store.HistoryQuery
		want []string
	}{
		{"system history since the fourth write (inclusive)", store.HistoryQuery{Since: t0.Add(3 * time.Second)}, []string{"Patient/a/_history/3", "Observation/o/_history/2", "Patient/b/_history/1"}},
		{"type history since between writes", store.HistoryQuery{Type: "Patient", Since: t0.Add(1500 * time.Millisecond)}, []string{"Patient/a/_history/3", "Patient/b/_history/1", "Patient/a/_history/2"}},
		{"instance history since after the last write is empty", store.HistoryQuery{Type: "Patient", ID: "a", Since: t0.Add(time.Hour)}, nil},
	} {
		got, err := s.History(ctxT(t), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		equalStrings(t, tc.name, keys(got), tc.want)
	}
}

// testHistorySinceUnordered: the engine stamps lastUpdated before the
// store orders the writes, so a later write can carry an earlier time; a
// backend must not assume lastUpdated grows with Seq.
func testHistorySinceUnordered(t *testing.T, h Harness) {
	s := h.Open(t)
	put(t, s, &store.Put{Type: "Patient", ID: "late-stamp", VersionID: 1, LastUpdated: t0.Add(10 * time.Second)})
	for i := range 5 {
		put(t, s, &store.Put{Type: "Patient", ID: fmt.Sprintf("early%d", i), VersionID: 1, LastUpdated: t0.Add(time.Duration(i) * time.Second)})
	}
	got, err := s.History(ctxT(t), store.HistoryQuery{Since: t0.Add(3 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "system history since 3 s", keys(got), []string{"Patient/early4/_history/1", "Patient/early3/_history/1", "Patient/late-stamp/_history/1"})
}

func testHistoryPaging(t *testing.T, h Harness) {
	s := h.Open(t)
	for i := range 10 {
		create(t, s, "Patient", fmt.Sprintf("p%02d", i))
	}
	all, err := s.History(ctxT(t), store.HistoryQuery{Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := keys(all)
	var got []string
	before := int64(0)
	for page := 0; ; page++ {
		vs, err := s.History(ctxT(t), store.HistoryQuery{Before: before, Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) == 0 {
			break
		}
		got = append(got, keys(vs)...)
		before = vs[len(vs)-1].Seq
		// New writes between pages must not shift the pages still to come.
		create(t, s, "Patient", fmt.Sprintf("new%02d", page))
		put(t, s, &store.Put{Type: "Patient", ID: "p00", VersionID: int64(page + 2)})
	}
	equalStrings(t, "history pages concatenated", got, want)
}

func testSearchID(t *testing.T, h Harness) {
	s := h.Open(t)
	create(t, s, "Patient", "a")
	create(t, s, "Patient", "b")
	create(t, s, "Observation", "a")
	put(t, s, &store.Put{Type: "Patient", ID: "b", VersionID: 2, Deleted: true})
	idc := func(id string) store.Cond { return store.Cond{Kind: store.CondID, Code: id} }
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"_id within a type", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{idc("a")}}}, []string{"Patient/a"}},
		{"_id across types", store.Query{Clauses: []store.Clause{{idc("a")}}}, []string{"Observation/a", "Patient/a"}},
		{"_id of a deleted resource matches nothing", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{idc("b")}}}, nil},
		{"_id of an unknown id matches nothing", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{idc("zz")}}}, nil},
		{"_id with several values", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{idc("a"), idc("b"), idc("zz")}}}, []string{"Patient/a"}},
	} {
		equalStrings(t, tc.name, SearchIDs(t, s, tc.q), tc.want)
	}
	r := search(t, s, &store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{idc("a")}}})
	if len(r.Versions) != 1 {
		t.Fatalf("search _id=a: %d results, want 1", len(r.Versions))
	}
	v := r.Versions[0]
	if v.VersionID != 1 || v.Deleted || string(v.Body) != string(body("Patient", "a", 1, "")) || v.Seq == 0 || !v.LastUpdated.Equal(t0) {
		t.Errorf("search result: got %+v, want Patient/a v1 with its body, Seq and LastUpdated", v)
	}
}

func testSearchTokenForms(t *testing.T, h Harness) {
	s := h.Open(t)
	create(t, s, "Patient", "sys1-A", tok("identifier", "http://s1", "A"))
	create(t, s, "Patient", "sys2-A", tok("identifier", "http://s2", "A"))
	create(t, s, "Patient", "nosys-A", tok("identifier", "", "A"))
	create(t, s, "Patient", "sys1-B", tok("identifier", "http://s1", "B"))
	create(t, s, "Patient", "other-param", tok("gender", "http://s1", "A"))
	cond := func(c store.Cond) store.Query {
		c.Kind, c.Param = store.CondToken, "identifier"
		return store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{c}}}
	}
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"code matches every system and none", cond(store.Cond{AnySystem: true, Code: "A"}), []string{"Patient/nosys-A", "Patient/sys1-A", "Patient/sys2-A"}},
		{"system|code matches that system only", cond(store.Cond{System: "http://s1", Code: "A"}), []string{"Patient/sys1-A"}},
		{"|code matches only rows without a system", cond(store.Cond{Code: "A"}), []string{"Patient/nosys-A"}},
		{"system| matches any code in that system", cond(store.Cond{System: "http://s1", AnyCode: true}), []string{"Patient/sys1-A", "Patient/sys1-B"}},
		{"codes are case-sensitive", cond(store.Cond{AnySystem: true, Code: "a"}), nil},
		{"the parameter must match", store.Query{Clauses: []store.Clause{{{Kind: store.CondToken, Param: "gender", AnySystem: true, Code: "A"}}}}, []string{"Patient/other-param"}},
	} {
		equalStrings(t, tc.name, SearchIDs(t, s, tc.q), tc.want)
	}
}

func testSearchOrAnd(t *testing.T, h Harness) {
	s := h.Open(t)
	create(t, s, "Observation", "o1", tok("code", "loinc", "1"), tok("status", "", "final"))
	create(t, s, "Observation", "o2", tok("code", "loinc", "2"), tok("status", "", "final"))
	create(t, s, "Observation", "o3", tok("code", "loinc", "2"), tok("status", "", "preliminary"))
	create(t, s, "Observation", "o4", tok("code", "loinc", "3"), tok("status", "", "final"))
	code := func(c string) store.Cond {
		return store.Cond{Kind: store.CondToken, Param: "code", System: "loinc", Code: c}
	}
	status := func(c string) store.Cond {
		return store.Cond{Kind: store.CondToken, Param: "status", AnySystem: true, Code: c}
	}
	q := func(cls ...store.Clause) store.Query {
		return store.Query{Types: []string{"Observation"}, Clauses: cls}
	}
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"OR within a clause", q(store.Clause{code("1"), code("2")}), []string{"Observation/o1", "Observation/o2", "Observation/o3"}},
		{"AND across clauses", q(store.Clause{code("2")}, store.Clause{status("final")}), []string{"Observation/o2"}},
		{"OR and AND together", q(store.Clause{code("1"), code("2"), code("3")}, store.Clause{status("final")}), []string{"Observation/o1", "Observation/o2", "Observation/o4"}},
		{"AND of two values of one parameter needs both on one resource", q(store.Clause{code("1")}, store.Clause{code("2")}), nil},
		{"a token and an _id in one clause", q(store.Clause{code("3"), {Kind: store.CondID, Code: "o1"}}), []string{"Observation/o1", "Observation/o4"}},
		{"no clauses matches every resource of the type", q(), []string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4"}},
	} {
		equalStrings(t, tc.name, SearchIDs(t, s, tc.q), tc.want)
	}
}

func testSearchTypes(t *testing.T, h Harness) {
	s := h.Open(t)
	idf := tok("identifier", "s", "X")
	create(t, s, "Patient", "p", idf)
	create(t, s, "Practitioner", "pr", idf)
	create(t, s, "Organization", "org", idf)
	cl := []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "s", Code: "X"}}}
	for _, tc := range []struct {
		name  string
		types []string
		want  []string
	}{
		{"one type", []string{"Patient"}, []string{"Patient/p"}},
		{"several types", []string{"Patient", "Organization"}, []string{"Organization/org", "Patient/p"}},
		{"no type filter searches every type", nil, []string{"Organization/org", "Patient/p", "Practitioner/pr"}},
		{"a type with no matches", []string{"Encounter"}, nil},
	} {
		equalStrings(t, tc.name, SearchIDs(t, s, store.Query{Types: tc.types, Clauses: cl}), tc.want)
	}
}

func testSearchPaging(t *testing.T, h Harness) {
	s := h.Open(t)
	const n = 25
	tag := tok("_tag", "s", "batch")
	var want []string
	for i := range n {
		id := fmt.Sprintf("p%02d", i)
		create(t, s, "Patient", id, tag)
		want = append(want, "Patient/"+id)
	}
	q := store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "_tag", System: "s", Code: "batch"}}}, Count: 4}
	var got []string
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > n {
			t.Fatal("too many pages")
		}
		r := search(t, s, &q)
		if len(r.Versions) > 4 {
			t.Fatalf("page %d: %d results, want at most Count=4", page, len(r.Versions))
		}
		for _, v := range r.Versions {
			k := v.Type + "/" + v.ID
			if seen[k] {
				t.Errorf("page %d repeats %s", page, k)
			}
			seen[k] = true
			got = append(got, k)
		}
		if r.Next == "" {
			break
		}
		// Between pages: new matches arrive, an already-returned and a
		// not-yet-returned match are updated (still matching), and a
		// non-matching resource appears.
		create(t, s, "Patient", fmt.Sprintf("late%02d", page), tag)
		create(t, s, "Patient", fmt.Sprintf("other%02d", page))
		for _, id := range []string{"p00", "p20"} {
			v := read(t, s, "Patient", id)
			put(t, s, &store.Put{Type: "Patient", ID: id, VersionID: v.VersionID + 1, Index: store.Index{Tokens: []store.Token{tag}}})
		}
		q.Cursor = r.Next
	}
	// Every original match appears exactly once; late arrivals may or may
	// not, but never twice (checked above).
	for _, k := range want {
		if !seen[k] {
			t.Errorf("paging skipped %s", k)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) && !(len(k) > 12 && k[:12] == "Patient/late") {
			t.Errorf("paging returned %s, which does not match", k)
		}
	}
	r := search(t, s, &store.Query{Types: []string{"Patient"}, Count: 1000})
	if r.Next != "" {
		t.Errorf("a page holding every match has Next %q, want empty", r.Next)
	}
	// The default page size is 100.
	err := s.Write(ctxT(t), func(tx store.Tx) error {
		for i := range 100 {
			id := fmt.Sprintf("bulk%03d", i)
			if err := tx.Put(ctxT(t), &store.Put{Type: "Patient", ID: id, VersionID: 1, LastUpdated: t0, Body: body("Patient", id, 1, "")}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r = search(t, s, &store.Query{Types: []string{"Patient"}})
	if len(r.Versions) != 100 || r.Next == "" {
		t.Errorf("Count 0: got %d results (Next %q), want the default page of 100 and a Next", len(r.Versions), r.Next)
	}
}

func testSearchTotal(t *testing.T, h Harness) {
	s := h.Open(t)
	for i := range 7 {
		create(t, s, "Observation", fmt.Sprintf("o%d", i), tok("status", "", "final"))
	}
	create(t, s, "Observation", "x", tok("status", "", "amended"))
	q := &store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "final"}}}, Count: 3, Total: true}
	r := search(t, s, q)
	if r.Total != 7 || len(r.Versions) != 3 {
		t.Errorf("Total: got %d with a page of %d, want 7 with a page of 3", r.Total, len(r.Versions))
	}
	q.Cursor = r.Next
	if r := search(t, s, q); r.Total != 7 {
		t.Errorf("Total on the second page: got %d, want 7", r.Total)
	}
	q.Total, q.Cursor = false, ""
	if r := search(t, s, q); r.Total != -1 {
		t.Errorf("Total when not asked: got %d, want -1", r.Total)
	}
}

func testSearchBadCursor(t *testing.T, h Harness) {
	s := h.Open(t)
	create(t, s, "Patient", "p")
	_, err := s.Search(ctxT(t), &store.Query{Types: []string{"Patient"}, Cursor: "not a cursor!"})
	wantKind(t, "Search with a forged cursor", err, fhir.EInvalid)
}

func testIndexReplaced(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "p", tok("identifier", "s", "old"), tok("gender", "", "male"))
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 2, Index: store.Index{Tokens: []store.Token{tok("identifier", "s", "new")}}})
	q := func(param, code string) store.Query {
		return store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: param, AnySystem: true, Code: code}}}}
	}
	equalStrings(t, "old identifier after update", SearchIDs(t, s, q("identifier", "old")), nil)
	equalStrings(t, "dropped gender after update", SearchIDs(t, s, q("gender", "male")), nil)
	equalStrings(t, "new identifier after update", SearchIDs(t, s, q("identifier", "new")), []string{"Patient/p"})
	r := search(t, s, &store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", AnySystem: true, Code: "new"}}}})
	if len(r.Versions) == 1 && r.Versions[0].VersionID != 2 {
		t.Errorf("search returned v%d, want the current v2", r.Versions[0].VersionID)
	}
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 3, Deleted: true})
	equalStrings(t, "identifier after delete", SearchIDs(t, s, q("identifier", "new")), nil)
	equalStrings(t, "type scan after delete", SearchIDs(t, s, store.Query{Types: []string{"Patient"}}), nil)
	// A resource re-created after deletion is indexed again.
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 4, Index: store.Index{Tokens: []store.Token{tok("identifier", "s", "again")}}})
	equalStrings(t, "identifier after re-create", SearchIDs(t, s, q("identifier", "again")), []string{"Patient/p"})
	if _, err := s.VRead(ctx, "Patient", "p", 1); err != nil {
		t.Errorf("VRead v1 after all that: %v", err)
	}
}

func testIndexKinds(t *testing.T, h Harness) {
	s := h.Open(t)
	ix := store.Index{
		Tokens:     []store.Token{{Param: "identifier", System: "s", Code: "1", Text: "Ward 1"}, {Param: "identifier", System: "s", Code: "1", Text: "Ward 1"}},
		Strings:    []store.String{{Param: "family", Norm: "aero", Exact: "Ærø"}},
		Dates:      []store.Date{{Param: "birthdate", Lo: -2208988800000, Hi: 4102444799999}},
		Numbers:    []store.Number{{Param: "probability", Lo: 0.15, Hi: 0.25}},
		Quantities: []store.Quantity{{Param: "value-quantity", System: "http://unitsofmeasure.org", Code: "mg", Lo: 4.5, Hi: 5.5}},
		References: []store.Reference{{Param: "general-practitioner", Type: "Practitioner", ID: "gp"}, {Param: "link", URL: "http://elsewhere/fhir/Patient/1"}},
		URIs:       []store.URI{{Param: "url", Value: "http://example.org/x"}},
	}
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 1, Index: ix})
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 2, Index: ix})
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 3, Deleted: true})
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 4, Index: ix})
	equalStrings(t, "token search after rewriting every index kind",
		SearchIDs(t, s, store.Query{Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "s", Code: "1"}}}}), []string{"Patient/p"})
}

func testSecret(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	calls := 0
	gen := func(v string) func() ([]byte, error) {
		return func() ([]byte, error) { calls++; return []byte(v), nil }
	}
	a, err := s.Secret(ctx, "signing-key", gen("first"))
	if err != nil || string(a) != "first" {
		t.Fatalf("first Secret: got %q, %v; want the generated value", a, err)
	}
	b, err := s.Secret(ctx, "signing-key", gen("second"))
	if err != nil || string(b) != "first" {
		t.Errorf("second Secret: got %q, %v; want the first value", b, err)
	}
	if calls != 1 {
		t.Errorf("generate called %d times for one name, want 1", calls)
	}
	if c, err := s.Secret(ctx, "other", gen("other")); err != nil || string(c) != "other" {
		t.Errorf("another name: got %q, %v", c, err)
	}
	genErr := errors.New("no entropy")
	if _, err := s.Secret(ctx, "failing", func() ([]byte, error) { return nil, genErr }); err == nil {
		t.Error("Secret with a failing generator: got nil error")
	}

	// Concurrent first callers all get the same value.
	const n = 20
	vals := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			vals[i], errs[i] = s.Secret(ctx, "race", func() ([]byte, error) { return fmt.Appendf(nil, "v%d", i), nil })
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || string(vals[i]) != string(vals[0]) {
			t.Errorf("concurrent Secret %d: got %q, %v; want %q like caller 0", i, vals[i], errs[i], vals[0])
		}
	}
}

func testConcurrentIncrements(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "counter")
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.Write(ctx, func(tx store.Tx) error {
				v, err := tx.Read(ctx, "Patient", "counter")
				if err != nil {
					return err
				}
				next := v.VersionID + 1
				return tx.Put(ctx, &store.Put{Type: "Patient", ID: "counter", VersionID: next, LastUpdated: t0, Body: body("Patient", "counter", next, "")})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("increment: %v", err)
		}
	}
	if v := read(t, s, "Patient", "counter"); v.VersionID != n+1 {
		t.Errorf("after %d concurrent increments: version %d, want %d", n, v.VersionID, n+1)
	}
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "counter", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != n+1 {
		t.Errorf("history holds %d versions, want %d", len(hist), n+1)
	}
}

func testSeq(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			err := s.Write(ctx, func(tx store.Tx) error {
				for i := range 3 {
					id := fmt.Sprintf("w%d-%d", w, i)
					if err := tx.Put(ctx, &store.Put{Type: "Patient", ID: id, VersionID: 1, LastUpdated: t0, Body: body("Patient", id, 1, "")}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	hist, err := s.History(ctx, store.HistoryQuery{Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 24 {
		t.Fatalf("history holds %d versions, want 24", len(hist))
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].Seq >= hist[i-1].Seq {
			t.Errorf("Seq %d listed after %d: want strictly decreasing newest first", hist[i].Seq, hist[i-1].Seq)
		}
	}
	// Within one Write, later Puts get larger Seqs.
	for w := range 8 {
		var prev int64
		for i := range 3 {
			v := read(t, s, "Patient", fmt.Sprintf("w%d-%d", w, i))
			if v.Seq <= prev {
				t.Errorf("w%d-%d: Seq %d not above the previous Put's %d", w, i, v.Seq, prev)
			}
			prev = v.Seq
		}
	}
	// A later Write gets a larger Seq than every earlier one.
	create(t, s, "Patient", "last")
	if v := read(t, s, "Patient", "last"); v.Seq <= hist[0].Seq {
		t.Errorf("a later Write got Seq %d, not above %d", v.Seq, hist[0].Seq)
	}
}

// testSeqVisibility guards history paging (HistoryQuery.Before): if a
// version with a smaller Seq could become visible after one with a larger
// Seq (sequence numbers taken at insert, transactions committing in another
// order), a reader paging by Seq would skip it for good.
func testSeqVisibility(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	const writers, perWriter = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Write(ctx, func(tx store.Tx) error {
					// Two Puts per Write, so a transaction spans some work
					// between taking a Seq and committing.
					for _, typ := range []string{"Patient", "Observation"} {
						if err := tx.Put(ctx, &store.Put{Type: typ, ID: id, VersionID: 1, LastUpdated: t0, Body: body(typ, id, 1, "")}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	all := func() map[int64]bool {
		vs, err := s.History(ctx, store.HistoryQuery{Count: 100000})
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[int64]bool, len(vs))
		for _, v := range vs {
			m[v.Seq] = true
		}
		return m
	}
	var failure string
	for running := true; running && failure == ""; {
		select {
		case <-done:
			running = false
		default:
		}
		before := all()
		var top int64
		for seq := range before {
			top = max(top, seq)
		}
		for seq := range all() {
			if seq < top && !before[seq] {
				failure = fmt.Sprintf("Seq %d became visible after Seq %d was already visible: history paging would skip it", seq, top)
				break
			}
		}
	}
	<-done // the writers use t; they must finish before the test does
	if failure != "" {
		t.Error(failure)
	}
}

func testClosed(t *testing.T, h Harness) {
	s := h.Open(t)
	create(t, s, "Patient", "p")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Write(context.Background(), func(tx store.Tx) error {
			return tx.Put(context.Background(), &store.Put{Type: "Patient", ID: "q", VersionID: 1, LastUpdated: t0, Body: body("Patient", "q", 1, "")})
		})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Write after Close: got nil error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write after Close hung")
	}
	if _, err := s.Read(context.Background(), "Patient", "p"); err == nil {
		t.Error("Read after Close: got nil error")
	}
	if _, err := s.Search(context.Background(), &store.Query{Types: []string{"Patient"}}); err == nil {
		t.Error("Search after Close: got nil error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("a second Close: %v, want nil", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping after Close: got nil error")
	}
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the backend under test provides no Reopen")
	}
	s := h.Open(t)
	ctx := ctxT(t)
	create(t, s, "Patient", "p", tok("identifier", "s", "1"))
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 2, Index: store.Index{Tokens: []store.Token{tok("identifier", "s", "2")}}})
	create(t, s, "Patient", "q")
	key, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("kept"), nil })
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.History(ctx, store.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	s = h.Reopen(t, s)
	if v := read(t, s, "Patient", "p"); v.VersionID != 2 || string(v.Body) != string(body("Patient", "p", 2, "")) {
		t.Errorf("after reopen: got v%d %s, want v2", v.VersionID, v.Body)
	}
	after, err := s.History(ctx, store.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "history after reopen", keys(after), keys(before))
	equalStrings(t, "search after reopen",
		SearchIDs(t, s, store.Query{Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "s", Code: "2"}}}}), []string{"Patient/p"})
	if k, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("new"), nil }); err != nil || string(k) != string(key) {
		t.Errorf("Secret after reopen: got %q, %v; want %q", k, err, key)
	}
	// Writing continues where it stopped: versions and Seq go on rising.
	put(t, s, &store.Put{Type: "Patient", ID: "p", VersionID: 3})
	if v := read(t, s, "Patient", "p"); v.Seq <= before[0].Seq {
		t.Errorf("after reopen, a new write got Seq %d, not above %d", v.Seq, before[0].Seq)
	}
}
