package postgres_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// TestSourceLabelsBackfill: migration 0010 fills in the labels of every
// "_source" row written before it exactly as a write does now, and until
// it has, a row without them (NULL) fails closed: every grant that denies
// a label withholds the resource, labelled or not.
func TestSourceLabelsBackfill(t *testing.T) {
	ctx := context.Background()
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	storetest.PutAccessFixture(t, st)
	written, err := st.SourceLabelsForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 3 || slices.ContainsFunc(written, func(l string) bool { return strings.HasSuffix(l, "NULL") }) {
		t.Fatalf("the fixture's source rows as written: %q; want 3 with labels", written)
	}
	if err := st.ExecForTest(ctx, "UPDATE idx_uri SET labels = NULL"); err != nil {
		t.Fatal(err)
	}
	sourcesB := store.Grant{Sources: []string{"https://x.example/ods/RB"}}
	denyR := sourcesB
	denyR.DenyLabels = []store.Label{{Code: "R"}}
	for _, tc := range []struct {
		g    store.Grant
		want []string
	}{
		{denyR, nil}, // Observation/d has no label, but its row does not say so
		{sourcesB, []string{"Observation/b", "Observation/d"}},
	} {
		got := storetest.SearchIDs(t, st, store.Query{Types: []string{"Observation"}, Filter: &store.Filter{Grants: []store.Grant{tc.g}}})
		if !slices.Equal(got, tc.want) {
			t.Errorf("labels unknown, grant %+v: got %q, want %q", tc.g, got, tc.want)
		}
	}

	sql, err := os.ReadFile("migrations/0010_source_labels.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, backfill, ok := strings.Cut(string(sql), "ADD COLUMN labels text[];")
	if !ok {
		t.Fatal("migration 0010 no longer adds the column as this test expects")
	}
	if err := st.ExecForTest(ctx, backfill); err != nil {
		t.Fatal(err)
	}
	filled, err := st.SourceLabelsForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(filled, written) {
		t.Errorf("labels filled in by the migration:\n%q\nwritten by the store:\n%q", filled, written)
	}
	storetest.CheckAccessFixture(t, st)
}
