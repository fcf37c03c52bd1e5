package store

import "math"

// A token row carries the span of its resource's dates (Index.DateSpan),
// so that a search by a code and a date range (Observation by code, date
// ge 2021, date lt 2022) can drop, while it walks the code's rows, those
// whose resource cannot have a date in the range, before it tests the
// resource's dates themselves. Both backends keep the span on their token
// rows and test it with SpanTests.

// SpanParam is the date parameter whose span token rows carry.
const SpanParam = "date"

// DateSpan is the span of ix's rows of SpanParam: the earliest lo and the
// latest hi, or, with none, the empty span (largest lo, smallest hi) that
// no date range holds.
func (ix *Index) DateSpan() (lo, hi int64) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, d := range ix.Dates {
		if d.Param == SpanParam {
			lo, hi = min(lo, d.Lo), max(hi, d.Hi)
		}
	}
	return lo, hi
}

// SpanTest is one bound that a date clause implies on a resource's span:
// its latest hi (OnHi) or its earliest lo compared by Op ("<", "<=", ">",
// ">=") with Value.
type SpanTest struct {
	OnHi  bool
	Op    string
	Value int64
}

// SQL is the test as an SQL condition with one '?' for Value, over the
// span held in the expressions lo and hi.
func (t SpanTest) SQL(lo, hi string) string {
	if t.OnHi {
		return hi + " " + t.Op + " ?"
	}
	return lo + " " + t.Op + " ?"
}

// SpanTests are the bounds that clauses other than skip imply on the span
// of a resource that meets them: each clause of one date condition on
// SpanParam (not negated, no :missing) but ne implies one or two. From the
// row tests of Prefix: eq and ap need a row with hi >= Lo and lo <= Hi; ge
// a row with hi >= Lo (hi > Hi >= Lo, or hi >= lo >= Lo); gt and sa one
// with hi > Hi; le one with lo <= Hi; lt and eb one with lo < Lo. A
// resource's span holds every row, so it meets each bound its rows do.
// They only narrow: the clauses themselves must still be tested.
func SpanTests(clauses []Clause, skip int) []SpanTest {
	var out []SpanTest
	for i, cl := range clauses {
		if i == skip || len(cl) != 1 {
			continue
		}
		c := cl[0]
		if c.Kind != CondDate || c.Param != SpanParam || c.Not || c.Missing != NotMissingTest {
			continue
		}
		switch c.Prefix {
		case PrefixEQ, PrefixAP:
			out = append(out, SpanTest{OnHi: true, Op: ">=", Value: c.Lo}, SpanTest{Op: "<=", Value: c.Hi})
		case PrefixGE:
			out = append(out, SpanTest{OnHi: true, Op: ">=", Value: c.Lo})
		case PrefixGT, PrefixSA:
			out = append(out, SpanTest{OnHi: true, Op: ">", Value: c.Hi})
		case PrefixLE:
			out = append(out, SpanTest{Op: "<=", Value: c.Hi})
		case PrefixLT, PrefixEB:
			out = append(out, SpanTest{Op: "<", Value: c.Lo})
		}
	}
	return out
}
