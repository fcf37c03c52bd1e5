package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
)

// TestDateSpanNarrowsOnly: a search by a code and a date walks the code's
// token rows and tests the span of each resource's dates inside the index
// (migrations 0008, 0009; translate.go, spanPred). The test may only
// narrow: every prefix finds exactly the Observations its definition
// (store.Prefix) admits, with the spans written by the store, and again
// with every span unknown (NULL, as on rows written before migration 0008
// that it did not reach).
func TestDateSpanNarrowsOnly(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	ctx := context.Background()
	ms := func(y int, m time.Month, d int) int64 { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMilli() }
	day := func(y int, m time.Month, d int) (int64, int64) { return ms(y, m, d), ms(y, m, d+1) - 1 }
	code := store.Token{Param: "code", System: "http://loinc.org", Code: "8867-4"}
	obs := func(id string, dates ...[2]int64) *store.Put {
		ix := store.Index{Tokens: []store.Token{code}}
		for _, d := range dates {
			ix.Dates = append(ix.Dates, store.Date{Param: "date", Lo: d[0], Hi: d[1]})
		}
		return put("Observation", id, 1, ix)
	}
	d2019lo, d2019hi := day(2019, 1, 1)
	d2021lo, d2021hi := day(2021, 6, 1)
	// a: one day in 2021; b: one day in 2019; c: a period over both;
	// d: no date at all.
	puts := []*store.Put{
		obs("a", [2]int64{d2021lo, d2021hi}),
		obs("b", [2]int64{d2019lo, d2019hi}),
		obs("c", [2]int64{d2019lo, d2021hi}),
		obs("d"),
	}
	if err := st.Write(ctx, func(tx store.Tx) error {
		for _, p := range puts {
			if err := tx.Put(ctx, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	y2021lo, y2021hi := ms(2021, 1, 1), ms(2022, 1, 1)-1
	cases := []struct {
		name   string
		prefix store.Prefix
		want   []string
	}{
		// Over the year 2021 as the search range [Lo, Hi]:
		{"eq: the row within the range", store.PrefixEQ, []string{"a"}},
		{"ge: within, or reaching above", store.PrefixGE, []string{"a"}},
		{"gt: reaching above", store.PrefixGT, nil},
		{"le: within, or reaching below", store.PrefixLE, []string{"a", "b", "c"}},
		{"lt: reaching below", store.PrefixLT, []string{"b", "c"}},
		{"sa: starting after", store.PrefixSA, nil},
		{"eb: ending before", store.PrefixEB, []string{"b"}},
		{"ap: overlapping", store.PrefixAP, []string{"a", "c"}},
	}
	check := func(when string) {
		t.Helper()
		for _, tc := range cases {
			q := store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
				{{Kind: store.CondToken, Param: "code", System: code.System, Code: code.Code}},
				{{Kind: store.CondDate, Param: "date", Prefix: tc.prefix, Lo: y2021lo, Hi: y2021hi}},
			}}
			r, err := st.Search(ctx, &q)
			if err != nil {
				t.Fatalf("%s, %s: %v", when, tc.name, err)
			}
			var got []string
			for _, v := range r.Versions {
				got = append(got, v.ID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s, %s: got %v, want %v", when, tc.name, got, tc.want)
			}
		}
	}
	check("spans as written")
	if err := st.ExecForTest(ctx, "UPDATE idx_token SET date_lo = NULL, date_hi = NULL"); err != nil {
		t.Fatal(err)
	}
	check("spans unknown")
}
