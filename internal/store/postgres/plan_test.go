package postgres_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// planShapes are the query shapes of issue 4's targets and of the access
// filter, chains, _has, text and sorting, as the engine builds them.
func planShapes() []struct {
	name string
	q    store.Query
} {
	pat := &store.Filter{Grants: []store.Grant{{Patients: []string{"p1"}}, {NoPatient: true}}}
	ref := func(param, typ, id string) store.Cond {
		return store.Cond{Kind: store.CondReference, Param: param, RefType: typ, RefID: id}
	}
	tok := func(param, sys, code string) store.Cond {
		return store.Cond{Kind: store.CondToken, Param: param, System: sys, Code: code}
	}
	return []struct {
		name string
		q    store.Query
	}{
		{"Patient by identifier", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{tok("identifier", "https://fhir.nhs.uk/Id/nhs-number", "9434765919")}}}},
		{"Patient by family and birthdate", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{
			{{Kind: store.CondString, Param: "family", Value: "smith"}},
			{{Kind: store.CondDate, Param: "birthdate", Lo: 0, Hi: 86399999}}}}},
		{"Observation by patient and code sorted -date", store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
			{ref("patient", "Patient", "p1")}, {tok("code", "http://loinc.org", "8867-4")}},
			Sort: []store.SortKey{{Kind: store.CondDate, Param: "date", Desc: true}}}},
		{"Observation by code and date range", store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
			{tok("code", "http://loinc.org", "8867-4")},
			{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixGE, Lo: 0, Hi: 86399999}},
			{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixLT, Lo: 864000000, Hi: 950399999}}}}},
		{"Encounter by patient", store.Query{Types: []string{"Encounter"}, Clauses: []store.Clause{{ref("patient", "Patient", "p1")}}}},
		{"compartment ($everything)", store.Query{Clauses: []store.Clause{{{Kind: store.CondCompartment, RefType: "Patient", RefID: "p1"}}}}},
		{"compartment under the access filter", store.Query{Types: []string{"Observation"}, Filter: pat,
			Clauses: []store.Clause{{{Kind: store.CondCompartment, RefType: "Patient", RefID: "p1"}}}}},
		{"chain subject:Patient.name", store.Query{Types: []string{"Observation"}, Filter: pat, Clauses: []store.Clause{{{
			Kind: store.CondChain, Param: "subject", Sub: &store.Query{Types: []string{"Patient"},
				Clauses: []store.Clause{{{Kind: store.CondString, Param: "name", Value: "smi"}}}}}}}}},
		{"_has:Observation:patient:code", store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{
			Kind: store.CondHas, Param: "patient", Sub: &store.Query{Types: []string{"Observation"},
				Clauses: []store.Clause{{tok("code", "http://loinc.org", "8867-4")}}}}}}}},
		{"_content", store.Query{Types: []string{"Condition"}, Clauses: []store.Clause{{{Kind: store.CondText, Param: "_content", Value: "asthma"}}}}},
		{"_lastUpdated sorted", store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondLastUpdated, Prefix: store.PrefixGE, Lo: 0, Hi: 999}}},
			Sort: []store.SortKey{{Kind: store.CondLastUpdated, Param: "_lastUpdated"}}}},
	}
}

// seqScan matches a sequential scan of a store table in a plan.
var seqScan = regexp.MustCompile(`Seq Scan on (resources|resource_versions|idx_\w+)`)

// TestQueryPlans checks that an index serves every step of the main query
// shapes: with sequential scans priced out, a Seq Scan left in a plan means
// no index can serve it, which on a large table is a query that reads the
// table. (The choice between indexes depends on statistics; run with
// SHAREDCARE_BENCH_PG to print the plans chosen on a loaded database.)
func TestQueryPlans(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	ctx := context.Background()
	big := st
	if u := os.Getenv("SHAREDCARE_BENCH_PG"); u != "" {
		s, err := postgres.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		big = s
	}
	check := func(t *testing.T, sqlText string, args []any) {
		plan, err := st.Explain(ctx, sqlText, args, true)
		if err != nil {
			t.Fatalf("EXPLAIN: %v\n%s", err, sqlText)
		}
		if m := seqScan.FindString(plan); m != "" {
			t.Errorf("plan has %q with sequential scans off: no index serves it\n%s", m, plan)
		}
		if big != st {
			plan, err := big.Explain(ctx, sqlText, args, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("plan on SHAREDCARE_BENCH_PG:\n%s", plan)
		}
	}
	for _, s := range planShapes() {
		t.Run(s.name, func(t *testing.T) {
			sqlText, args, err := postgres.PageSQL(&s.q)
			if err != nil {
				t.Fatal(err)
			}
			check(t, sqlText, args)
		})
	}
	t.Run("_revinclude Condition:encounter", func(t *testing.T) {
		sqlText, args, err := postgres.IncludeSQL(store.Include{SourceType: "Condition", Param: "encounter"}, true, []int64{1, 2, 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, sqlText, args)
	})
	t.Run("_include Observation:patient under the filter", func(t *testing.T) {
		f := &store.Filter{Grants: []store.Grant{{Patients: []string{"p1"}}}}
		sqlText, args, err := postgres.IncludeSQL(store.Include{SourceType: "Observation", Param: "patient"}, false, []int64{1, 2, 3}, f)
		if err != nil {
			t.Fatal(err)
		}
		check(t, sqlText, args)
	})
}

// TestPlansReadIndexesAlone checks that the two slowest shapes of issue 4's
// targets read no table page for the rows they walk and reject: the walk
// of a code's Observations (code and date range) and the probe of each of
// a patient's Observations for a code (patient and code sorted by date)
// use idx_token_value, which holds the plain columns a test names and the
// date span as key columns the walk tests, and the sorted page tests a patient's Observations from their index rows alone,
// reading resources only for the page it returns.
func TestPlansReadIndexesAlone(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	ctx := context.Background()
	shapes := map[string]store.Query{}
	for _, s := range planShapes() {
		shapes[s.name] = s.q
	}
	plan := func(name string) string {
		q := shapes[name]
		sqlText, args, err := postgres.PageSQL(&q)
		if err != nil {
			t.Fatal(err)
		}
		p, err := st.Explain(ctx, sqlText, args, true)
		if err != nil {
			t.Fatalf("EXPLAIN: %v\n%s", err, sqlText)
		}
		return p
	}
	p := plan("Observation by code and date range")
	if !regexp.MustCompile(`Index Only Scan using idx_token_value on idx_token`).MatchString(p) {
		t.Errorf("code and date range: the code's rows are not walked in idx_token_value alone:\n%s", p)
	}
	// The span of the resource's dates (migrations 0008, 0009) is tested
	// by the B-tree on each entry, not by a filter on each row returned.
	if !regexp.MustCompile(`Index Cond: \([^\n]*COALESCE\(date_hi`).MatchString(p) {
		t.Errorf("code and date range: the date span is not an index condition:\n%s", p)
	}
	p = plan("Observation by patient and code sorted -date")
	if !regexp.MustCompile(`Index Only Scan using idx_token_value on idx_token`).MatchString(p) {
		t.Errorf("patient and code sorted by date: the code is not probed in idx_token_value alone:\n%s", p)
	}
	if n := len(regexp.MustCompile(` on resources `).FindAllString(p, -1)); n != 1 {
		t.Errorf("patient and code sorted by date: resources read %d times in the plan, want once (the page's rows):\n%s", n, p)
	}
}

// TestGenericPlans: the store's connections run prepared statements with
// their generic plan (Open); the searches that need plans made for their
// values send the values written in instead (custom), which
// TestDateSpanNarrowsOnly and the search suite exercise.
func TestGenericPlans(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	got, err := st.SettingForTest(context.Background(), "plan_cache_mode")
	if err != nil {
		t.Fatal(err)
	}
	if got != "force_generic_plan" {
		t.Errorf("plan_cache_mode = %q, want force_generic_plan", got)
	}
}

// TestSortedPagesQuoteTheirValues: a sorted page is sent with its values
// written into the statement (custom), so values that mean something to
// SQL or to the placeholder syntax must arrive as the values they are.
func TestSortedPagesQuoteTheirValues(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	ctx := context.Background()
	names := []string{`O'Brien`, `back\slash`, `$1`, `?`, `'); DROP TABLE resources; --`, `Ünïcödé`, `E'\x41'`}
	if err := st.Write(ctx, func(tx store.Tx) error {
		for i, n := range names {
			ix := store.Index{Strings: []store.String{{Param: "family", Norm: n, Exact: n}}}
			if err := tx.Put(ctx, put("Patient", fmt.Sprintf("p%d", i), 1, ix)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		q := store.Query{Types: []string{"Patient"},
			Clauses: []store.Clause{{{Kind: store.CondString, Param: "family", Match: store.MatchExact, Value: n}}},
			Sort:    []store.SortKey{{Kind: store.CondString, Param: "family", Desc: true}}}
		if got, want := storetest.SearchIDs(t, st, q), fmt.Sprintf("Patient/p%d", i); !slices.Equal(got, []string{want}) {
			t.Errorf("family exactly %q, sorted: got %q, want [%s]", n, got, want)
		}
	}
}
