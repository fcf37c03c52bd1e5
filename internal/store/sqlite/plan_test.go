package sqlite

import (
	"context"
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
			forbid = "resources_type"
		}
		pageSQL, args, err := b.page(tc.q.Sort, cursor{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, s, tc.name, pageSQL, args, forbid)
		checkPlan(t, s, tc.name+" (total)", b.countSQL(), b.args, forbid)
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
	for _, line := range plan {
		// Scanning the page's own rows (p), a list of rids bound as JSON
		// (json_each) or a MATCH on the FTS5 table is fine; a scan of a
		// table or index is not.
		okScan := line == "SCAN p" || strings.HasPrefix(line, "SCAN j VIRTUAL TABLE") ||
			(strings.HasPrefix(line, "SCAN idx_text VIRTUAL TABLE INDEX") && !strings.HasSuffix(line, "INDEX 0:"))
		if (strings.HasPrefix(line, "SCAN") && !okScan) || (forbid != "" && strings.Contains(line, forbid)) {
			t.Errorf("%s: the plan has %q:\n  %s\nquery: %s", name, line, strings.Join(plan, "\n  "), sqlText)
			return
		}
	}
}
