package storetest

import (
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// A search by a code and a date walks the code's token rows and drops
// those whose resource's date span (store.Index.DateSpan, kept on each
// token row) cannot meet the date clauses (store.SpanTests), before it
// tests the clauses themselves. These tests hold it to only narrowing:
// each prefix finds exactly what its definition (store.Prefix) admits,
// after create, after the dates change, and through a migration that
// fills the span in.

var spanCode = store.Token{Param: "code", System: "http://loinc.org", Code: "8867-4"}

func spanMS(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMilli()
}

func spanObs(id string, version int64, dates ...[2]int64) *store.Put {
	ix := store.Index{Tokens: []store.Token{spanCode}}
	for _, d := range dates {
		ix.Dates = append(ix.Dates, store.Date{Param: store.SpanParam, Lo: d[0], Hi: d[1]})
	}
	return &store.Put{Type: "Observation", ID: id, VersionID: version, Index: ix}
}

var (
	day2019 = [2]int64{spanMS(2019, 1, 1), spanMS(2019, 1, 2) - 1}
	day2021 = [2]int64{spanMS(2021, 6, 1), spanMS(2021, 6, 2) - 1}
	over    = [2]int64{spanMS(2019, 1, 1), spanMS(2021, 6, 2) - 1}
)

// PutDateSpanFixture writes the Observations CheckDateSpanFixture expects:
// a, one day in 2021; b, one day in 2019; c, a period over both; d, no
// date at all; e, two days, one in each year.
func PutDateSpanFixture(t testing.TB, s store.Store) {
	t.Helper()
	for _, p := range []*store.Put{
		spanObs("a", 1, day2021),
		spanObs("b", 1, day2019),
		spanObs("c", 1, over),
		spanObs("d", 1),
		spanObs("e", 1, day2019, day2021),
	} {
		put(t, s, p)
	}
}

// spanCase is one date clause over the year 2021 and what it finds among
// the fixture's Observations, from the prefixes' definitions.
var spanCases = []struct {
	name   string
	prefix store.Prefix
	want   []string
}{
	{"eq: a row within the range", store.PrefixEQ, []string{"Observation/a", "Observation/e"}},
	{"ge: a row within, or reaching above", store.PrefixGE, []string{"Observation/a", "Observation/e"}},
	{"gt: a row reaching above", store.PrefixGT, nil},
	{"le: a row within, or reaching below", store.PrefixLE, []string{"Observation/a", "Observation/b", "Observation/c", "Observation/e"}},
	{"lt: a row reaching below", store.PrefixLT, []string{"Observation/b", "Observation/c", "Observation/e"}},
	{"sa: a row starting after", store.PrefixSA, nil},
	{"eb: a row ending before", store.PrefixEB, []string{"Observation/b", "Observation/e"}},
	{"ap: a row overlapping", store.PrefixAP, []string{"Observation/a", "Observation/c", "Observation/e"}},
}

// CheckDateSpanFixture checks that a search by the fixture's code and
// each date prefix over 2021 finds exactly what the prefix admits, and
// that two clauses (ge 2021 and lt 2022, a year) find what both admit.
func CheckDateSpanFixture(t testing.TB, s store.Store) {
	t.Helper()
	lo, hi := spanMS(2021, 1, 1), spanMS(2022, 1, 1)-1
	code := store.Cond{Kind: store.CondToken, Param: spanCode.Param, System: spanCode.System, Code: spanCode.Code}
	date := func(p store.Prefix, lo, hi int64) store.Clause {
		return store.Clause{{Kind: store.CondDate, Param: store.SpanParam, Prefix: p, Lo: lo, Hi: hi}}
	}
	for _, tc := range spanCases {
		got := SearchIDs(t, s, store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{code}, date(tc.prefix, lo, hi)}})
		equalStrings(t, tc.name, got, tc.want)
	}
	year := SearchIDs(t, s, store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{code},
		date(store.PrefixGE, lo, lo+86_400_000-1), date(store.PrefixLT, hi+1, hi+86_400_000)}})
	equalStrings(t, "ge 2021-01-01 and lt 2022-01-01", year, []string{"Observation/a", "Observation/c", "Observation/e"})
}

func testDateSpanFixture(t *testing.T, h Harness) {
	s := h.Open(t)
	PutDateSpanFixture(t, s)
	CheckDateSpanFixture(t, s)
}

// testDateSpanFollowsWrites: the span on a resource's token rows follows
// its dates through update and delete.
func testDateSpanFollowsWrites(t *testing.T, h Harness) {
	s := h.Open(t)
	lo, hi := spanMS(2021, 1, 1), spanMS(2022, 1, 1)-1
	q := store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{
		{{Kind: store.CondToken, Param: spanCode.Param, System: spanCode.System, Code: spanCode.Code}},
		{{Kind: store.CondDate, Param: store.SpanParam, Prefix: store.PrefixEQ, Lo: lo, Hi: hi}},
	}}
	x := []string{"Observation/x"}
	put(t, s, spanObs("x", 1, day2019))
	equalStrings(t, "created in 2019, searched in 2021", SearchIDs(t, s, q), nil)
	put(t, s, spanObs("x", 2, day2021))
	equalStrings(t, "moved to 2021", SearchIDs(t, s, q), x)
	put(t, s, spanObs("x", 3))
	equalStrings(t, "date removed", SearchIDs(t, s, q), nil)
	put(t, s, spanObs("x", 4, day2019, day2021))
	equalStrings(t, "dates in both years", SearchIDs(t, s, q), x)
	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 5, Deleted: true})
	equalStrings(t, "deleted", SearchIDs(t, s, q), nil)
}
