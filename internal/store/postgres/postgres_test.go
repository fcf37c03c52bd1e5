package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// TestConformance holds the PostgreSQL store to the same contract as every
// backend. It needs SHAREDCARE_TEST_POSTGRES (.ci/run sets it); without it
// the test is skipped, or fails when SHAREDCARE_REQUIRE_POSTGRES=1.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open:   backend.OpenPostgresForTest,
		Reopen: backend.ReopenForTest,
	})
}

// The tests below are PostgreSQL-specific on purpose: they exercise what the
// SQLite store gets for free from its single writer (row locks, races on a
// new resource's key, migrations started by two nodes at once). The shared
// contract is checked by the conformance suite.

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func put(typ, id string, version int64, idx store.Index) *store.Put {
	return &store.Put{Type: typ, ID: id, VersionID: version, LastUpdated: t0.Add(time.Duration(version) * time.Second),
		Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"v":%d}`, typ, id, version), Index: idx}
}

var errStale = errors.New("stale version")

// Of 100 writers that all read version 1 and want to write version 2 only
// if it is still the latest (If-Match: W/"1"), exactly one may succeed: the
// row lock taken by Tx.Read makes the others wait and then see version 2.
func TestConcurrentUpdatesOfOneVersionExactlyOneWins(t *testing.T) {
	st := backend.OpenPostgresForTest(t)
	ctx := context.Background()
	if err := st.Write(ctx, func(tx store.Tx) error { return tx.Put(ctx, put("Patient", "p1", 1, store.Index{})) }); err != nil {
		t.Fatal(err)
	}
	const n = 100
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = st.Write(ctx, func(tx store.Tx) error {
				v, err := tx.Read(ctx, "Patient", "p1")
				if err != nil {
					return err
				}
				if v.VersionID != 1 {
					return errStale
				}
				return tx.Put(ctx, put("Patient", "p1", 2, store.Index{}))
			})
		})
	}
	wg.Wait()
	ok, stale := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, errStale):
			stale++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || stale != n-1 {
		t.Errorf("got %d successes and %d stale, want 1 and %d", ok, stale, n-1)
	}
}

// Concurrent writers that each create-or-update one new id all succeed, one
// version each: the losers of the race on the new key are rerun and find
// the winner's version.
func TestConcurrentCreatesOfOneIDAreRetried(t *testing.T) {
	st := backend.OpenPostgresForTest(t)
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = st.Write(ctx, func(tx store.Tx) error {
				next := int64(1)
				v, err := tx.Read(ctx, "Patient", "new")
				switch {
				case err == nil:
					next = v.VersionID + 1
				case !fhir.IsKind(err, fhir.ENotFound):
					return err
				}
				return tx.Put(ctx, put("Patient", "new", next, store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: fmt.Sprint(i)}}}))
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	v, err := st.Read(ctx, "Patient", "new")
	if err != nil {
		t.Fatal(err)
	}
	if v.VersionID != n {
		t.Errorf("got version %d, want %d", v.VersionID, n)
	}
	// Only the current version's index rows remain.
	res, err := st.Search(ctx, &store.Query{Types: []string{"Patient"}, Total: true,
		Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", AnySystem: true, AnyCode: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1 {
		t.Errorf("got %d matches on identifier, want 1", res.Total)
	}
}

// Concurrent conditional creates (search; create only if nothing matched)
// of the same identifier leave exactly one resource: the losers are rerun
// and find the winner's.
func TestConcurrentConditionalCreatesMakeOneResource(t *testing.T) {
	st := backend.OpenPostgresForTest(t)
	ctx := context.Background()
	q := &store.Query{Types: []string{"Organization"},
		Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "https://example.org/ods", Code: "RX1"}}}}
	// Every writer's first attempt waits after its search until all have
	// searched, so they all see "no match" (n stays below the pool size).
	const n = 8
	var wg, searched sync.WaitGroup
	searched.Add(n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			first := true
			errs[i] = st.Write(ctx, func(tx store.Tx) error {
				created[i] = false
				res, err := tx.Search(ctx, q)
				if first {
					first = false
					searched.Done()
					searched.Wait()
				}
				if err != nil || len(res.Versions) > 0 {
					return err
				}
				created[i] = true
				return tx.Put(ctx, put("Organization", fmt.Sprint("org", i), 1, store.Index{Tokens: []store.Token{
					{Param: "identifier", System: "https://example.org/ods", Code: "RX1"}}}))
			})
		})
	}
	wg.Wait()
	wins := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("writer %d: %v", i, errs[i])
		}
		if created[i] {
			wins++
		}
	}
	res, err := st.Search(ctx, &store.Query{Types: q.Types, Clauses: q.Clauses, Total: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1 || wins != 1 {
		t.Errorf("got %d matching resources and %d creating writers, want 1 and 1", res.Total, wins)
	}
}

// Two nodes starting against an empty schema at the same moment both open
// it; the migrations run once.
func TestMigrationsRunOnceWhenNodesStartTogether(t *testing.T) {
	base := backend.PostgresURLForTests(t)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s", backend.EnvTestPostgres)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rnd [8]byte
	rand.Read(rnd[:])
	schema := "t_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, _ := url.Parse(base)
	qs := u.Query()
	qs.Set("search_path", schema)
	u.RawQuery = qs.Encode()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			st, err := postgres.Open(ctx, u.String())
			if err == nil {
				st.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	var applied int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".schema_version WHERE version = 1").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Errorf("migration 1 recorded %d times, want 1", applied)
	}
}

// Index values may hold any JSON string, NUL included, and be longer than a
// btree entry allows; they must be stored and found exactly.
func TestIndexValuesOfAnyContentAndLength(t *testing.T) {
	st := backend.OpenPostgresForTest(t)
	ctx := context.Background()
	long := make([]byte, 10000)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	codes := []string{"nul\x00inside", string(long), string(long[:9999]) + "z"}
	for i, c := range codes {
		p := put("Observation", fmt.Sprint("o", i), 1, store.Index{
			Tokens:     []store.Token{{Param: "code", System: "sys", Code: c}},
			Strings:    []store.String{{Param: "s", Norm: c, Exact: c}},
			URIs:       []store.URI{{Param: "u", Value: c}},
			References: []store.Reference{{Param: "subject", Type: c, ID: c}, {Param: "see", URL: c}},
			Quantities: []store.Quantity{{Param: "q", System: c, Code: c, Lo: 1, Hi: 2}},
		})
		if err := st.Write(ctx, func(tx store.Tx) error { return tx.Put(ctx, p) }); err != nil {
			t.Fatalf("write code %d: %v", i, err)
		}
	}
	for i, c := range codes {
		got := storetest.SearchIDs(t, st, store.Query{Types: []string{"Observation"},
			Clauses: []store.Clause{{{Kind: store.CondToken, Param: "code", System: "sys", Code: c}}}})
		if want := fmt.Sprint("Observation/o", i); !slices.Equal(got, []string{want}) {
			t.Errorf("search code %d: got %q, want [%s]", i, got, want)
		}
	}
}

// After a bulk load the importer asks the store to analyze itself, so that
// the first queries are planned for the data rather than for empty tables.
func TestAnalyzeUpdatesPlannerStatistics(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	ctx := context.Background()
	if err := st.Write(ctx, func(tx store.Tx) error { return tx.Put(ctx, put("Patient", "a", 1, store.Index{})) }); err != nil {
		t.Fatal(err)
	}
	if at, err := st.LastAnalyzed(ctx); err != nil || at != nil {
		t.Fatalf("before: last analyzed %v, %v; want never", at, err)
	}
	var a store.Analyzer = st
	if err := a.Analyze(ctx); err != nil {
		t.Fatal(err)
	}
	// The statistics collector reports asynchronously; give it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		at, err := st.LastAnalyzed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if at != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resources table was not analyzed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
