package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// TestQueryPlans guards the query shapes against plans that read every
// resource or version: with millions of rows such a plan is a timeout, and
// SQLite's planner has no statistics to steer it (we run no ANALYZE, so
// plans are the same on every node). Each row names the access it needs.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tokenC := func(code string) store.Cond {
		return store.Cond{Kind: store.CondToken, Param: "identifier", System: "s", Code: code}
	}
	searches := []struct {
		name string
		q    store.Query
	}{
		{"a token search on a type drives from the token index, not a type scan",
			store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{tokenC("1")}}}},
		{"a token search on every type drives from the token index",
			store.Query{Clauses: []store.Clause{{tokenC("1")}}}},
		{"an OR of tokens and an _id drives from their index lookups",
			store.Query{Types: []string{"Patient", "Person"}, Clauses: []store.Clause{{tokenC("1"), tokenC("2"), {Kind: store.CondID, Code: "x"}}}}},
		{"an AND of clauses drives from one lookup and probes the other",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{tokenC("1")}, {{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "final"}}}}},
		{"a system| token uses the token index by parameter",
			store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "identifier", System: "s", AnyCode: true}}}}},
		{"a type listing walks the type index in rid order",
			store.Query{Types: []string{"Patient"}}},
		{"family prefix and birthdate drive from the string index and seek the date rows by key",
			store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{
				{{Kind: store.CondString, Param: "family", Value: "smi"}},
				{{Kind: store.CondDate, Param: "birthdate", Lo: 0, Hi: 86399999}}}}},
		{"patient and code sorted by -date drive from the reference index",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
				{{Kind: store.CondReference, Param: "patient", RefType: "Patient", RefID: "p1"}},
				{{Kind: store.CondToken, Param: "code", System: "http://loinc.org", Code: "8302-2"}}},
				Sort: []store.SortKey{{Kind: store.CondDate, Param: "date", Desc: true}}}},
		{"code and a date range drive from the token index",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
				{{Kind: store.CondToken, Param: "code", System: "http://loinc.org", Code: "8302-2"}},
				{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixGE, Lo: 0, Hi: 86399999}},
				{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixLT, Lo: 864000000, Hi: 950399999}}}}},
		{"a date range alone seeks the date indexes by lo and by hi",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
				{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixGE, Lo: 0, Hi: 86399999}}}}},
		{"a compartment search over every type drives from the membership index",
			store.Query{Clauses: []store.Clause{{{Kind: store.CondCompartment, RefType: "Patient", RefID: "p1"}}}, Count: 1000}},
		{"_lastUpdated within a type seeks (type, last_updated)",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondLastUpdated, Prefix: store.PrefixGT, Lo: 0, Hi: 999}}}}},
		{"_text drives from the FTS5 index",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondText, Param: "_content", Value: "height body"}}}}},
		{"a composite drives from the composite index",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondComposite, Param: "code-value-quantity", Parts: []store.Cond{
				{Kind: store.CondToken, AnySystem: true, Code: "8302-2"},
				{Kind: store.CondQuantity, Prefix: store.PrefixGT, NumLo: 150, NumHi: 150, AnySystem: true, AnyCode: true}}}}}}},
		{"a chain drives from the target's lookup and the reference target index",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondChain, Param: "subject",
				Sub: &store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{tokenC("1")}}}}}}}},
		{"a nested _has drives from the innermost lookup",
			store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondHas, Param: "subject",
				Sub: &store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "code", AnySystem: true, Code: "x"}}}}}}}}},
		{":not and :missing are probed per driven row",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
				{{Kind: store.CondToken, Param: "code", AnySystem: true, Code: "x"}},
				{{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "final", Not: true}},
				{{Kind: store.CondDate, Param: "date", Missing: store.MissingTrue}}}}},
		{"the access filter is probed per row by key range",
			store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{tokenC("1")}},
				Filter: &store.Filter{Grants: []store.Grant{{Patients: []string{"p1"}, DenyLabels: []store.Label{{Code: "R"}}}, {NoPatient: true, Sources: []string{"https://x/ods/RXX"}}}}}},
		{"sort by a string with a cursor stays on the driving lookup",
			store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{tokenC("1")}},
				Sort: []store.SortKey{{Kind: store.CondString, Param: "family"}, {Kind: store.CondLastUpdated, Param: "_lastUpdated", Desc: true}}}},
	}
	for _, tc := range searches {
		var b sqlBuilder
		if err := b.where(&tc.q); err != nil {
			t.Fatal(err)
		}
		// With clauses, walking the type index would read every resource
		// of the type: the clauses' index lookups must drive.
		forbid := ""
		if len(tc.q.Clauses) > 0 {
			forbid = "INDEX resources_type ("
		}
		var pb sqlBuilder
		if err := pb.wherePage(&tc.q); err != nil {
			t.Fatal(err)
		}
		pageSQL, args, err := pb.page(tc.q.Sort, cursor{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, s, tc.name, pageSQL, args, forbid)
		if pb.stream {
			// A streamed page walks the index in rid order: sorting (or
			// de-duplicating through a temporary B-tree) would read every
			// match before returning the first.
			checkStreamed(t, s, tc.name, pageSQL, args)
		}
		if len(tc.q.Sort) == 0 {
			for _, back := range []bool{false, true} {
				pageSQL, args, err := pb.page(nil, cursor{back: back, rid: 5}, 10)
				if err != nil {
					t.Fatal(err)
				}
				checkPlan(t, s, fmt.Sprintf("%s (cursor, backward %v)", tc.name, back), pageSQL, args, forbid)
			}
		}
		if len(tc.q.Sort) > 0 {
			vals := make([]any, len(tc.q.Sort))
			for i := range vals {
				vals[i] = "v"
			}
			for _, back := range []bool{false, true} {
				pageSQL, args, err := b.page(tc.q.Sort, cursor{back: back, vals: vals, rid: 5}, 10)
				if err != nil {
					t.Fatal(err)
				}
				checkPlan(t, s, fmt.Sprintf("%s (cursor, backward %v)", tc.name, back), pageSQL, args, forbid)
			}
		}
		checkPlan(t, s, tc.name+" (total)", b.countSQL(), b.args, forbid)
	}
	// A code and a date range test the date span on idx_token_code's
	// entries (migrations/0007): the walk must read no idx_token row.
	codeDate := store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
		{{Kind: store.CondToken, Param: "code", System: "http://loinc.org", Code: "8302-2"}},
		{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixGE, Lo: 0, Hi: 86399999}}}}
	var cb sqlBuilder
	if err := cb.wherePage(&codeDate); err != nil {
		t.Fatal(err)
	}
	codeDateSQL, codeDateArgs, err := cb.page(nil, cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(codeDateSQL, "d.date_hi >= ?") {
		t.Errorf("code and a date range: the walk does not test the span:\n%s", codeDateSQL)
	}
	var detail strings.Builder
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+codeDateSQL, codeDateArgs...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, notused int
		var line string
		if err := rows.Scan(&id, &parent, &notused, &line); err != nil {
			t.Fatal(err)
		}
		detail.WriteString(line + "\n")
	}
	rows.Close()
	if !strings.Contains(detail.String(), "SEARCH d USING COVERING INDEX idx_token_code") {
		t.Errorf("code and a date range: the span is not read from idx_token_code alone:\n%s", detail.String())
	}
	for _, rev := range []bool{false, true} {
		for _, inc := range []store.Include{
			{SourceType: "Encounter", Param: "patient", TargetType: "Patient"},
			{SourceType: "Condition", Param: "encounter"},
			{Param: "*"},
		} {
			if rev && inc.Param == "*" {
				continue
			}
			f := &store.Filter{Grants: []store.Grant{{Patients: []string{"p1"}}}}
			sqlText, args, err := includeSQL(inc, rev, []int64{1, 2, 3}, f, 100)
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, s, fmt.Sprintf("include %+v (reverse %v)", inc, rev), sqlText, args, "")
		}
	}
	histories := []struct {
		name string
		q    store.HistoryQuery
	}{
		{"type history seeks the type's versions", store.HistoryQuery{Type: "Patient", Before: 100}},
		{"instance history seeks the resource's versions", store.HistoryQuery{Type: "Patient", ID: "p", Before: 100}},
		{"system history since a time seeks the first version that can match", store.HistoryQuery{Since: time.Now()}},
		{"type history since a time seeks too", store.HistoryQuery{Type: "Patient", Since: time.Now()}},
	}
	for _, tc := range histories {
		sqlText, args := historySQL(tc.q, 1)
		checkPlan(t, s, tc.name, sqlText, args, "")
	}
}

// checkStreamed fails if the page query's inner part (the co-routine p
// producing the page's rids) sorts or de-duplicates through a temporary
// B-tree; the outer query may sort the page's own rows.
func checkStreamed(t *testing.T, s *Store, name, sqlText string, args []any) {
	t.Helper()
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+sqlText, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer rows.Close()
	var plan []string
	inner := false
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
		switch {
		case detail == "CO-ROUTINE p":
			inner = true
		case detail == "SCAN p":
			inner = false
		case inner && strings.Contains(detail, "TEMP B-TREE"):
			t.Errorf("%s (streamed): the page's rids are sorted before the first is returned:\n  %s", name, strings.Join(plan, "\n  "))
		}
	}
}

// checkPlan fails if the plan of sqlText makes a full pass over a table or
// index (SQLite reports it as "SCAN ...") or mentions forbid.
func checkPlan(t *testing.T, s *Store, name, sqlText string, args []any, forbid string) {
	t.Helper()
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+sqlText, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if testing.Verbose() {
		t.Logf("%s:\n  %s", name, strings.Join(plan, "\n  "))
	}
	for _, line := range plan {
		// Scanning the page's own rows (p), a list of rids bound as JSON
		// (json_each) or a MATCH on the FTS5 table is fine; a scan of a
		// table or index is not.
		okScan := line == "SCAN p" || strings.HasPrefix(line, "SCAN j VIRTUAL TABLE") ||
			(strings.HasPrefix(line, "SCAN idx_text VIRTUAL TABLE INDEX") && !strings.HasSuffix(line, "INDEX 0:"))
		if (strings.HasPrefix(line, "SCAN") && !okScan) || strings.Contains(line, "AUTOMATIC") || (forbid != "" && strings.Contains(line, forbid)) {
			t.Errorf("%s: the plan has %q:\n  %s\nquery: %s", name, line, strings.Join(plan, "\n  "), sqlText)
			return
		}
	}
}
