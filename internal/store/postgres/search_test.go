package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// These tests pin this backend's translation of the search AST with rows
// written from store/query.go's definitions: they are the SQLite store's
// rows (internal/store/sqlite/search_test.go), run here unchanged so that
// both translations are held to the same expectations (they belong in
// storetest; until they move there, keep the two copies equal). The engine-level search suite
// (package search's, run on every backend) checks the FHIR rules end to
// end; these check the SQL for each node, and the plans are checked by
// TestQueryPlans.

func ms(y int, m time.Month, d, h, mi int) int64 {
	return time.Date(y, m, d, h, mi, 0, 0, time.UTC).UnixMilli()
}

// day is the closed millisecond range of one UTC day.
func day(y int, m time.Month, d int) (int64, int64) {
	lo := ms(y, m, d, 0, 0)
	return lo, lo + 86400000 - 1
}

type fixture struct {
	typ, id string
	ix      store.Index
	lu      time.Time
}

func putAll(t *testing.T, s store.Store, fs []fixture) {
	t.Helper()
	ctx := context.Background()
	err := s.Write(ctx, func(tx store.Tx) error {
		for _, f := range fs {
			v, err := tx.Read(ctx, f.typ, f.id)
			next := int64(1)
			if err == nil {
				next = v.VersionID + 1
			}
			lu := f.lu
			if lu.IsZero() {
				lu = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			}
			b := fmt.Appendf(nil, `{"resourceType":%q,"id":%q}`, f.typ, f.id)
			if err := tx.Put(ctx, &store.Put{Type: f.typ, ID: f.id, VersionID: next, LastUpdated: lu, Body: b, Index: f.ix}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func searchKeys(t *testing.T, s store.Store, q store.Query) []string {
	t.Helper()
	r, err := s.Search(context.Background(), &q)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	var out []string
	for _, v := range r.Versions {
		out = append(out, v.Type+"/"+v.ID)
	}
	return out
}

func comp(id string) []store.Compartment { return []store.Compartment{{Type: "Patient", ID: id}} }

func searchFixture() []fixture {
	b80lo, b80hi := day(1980, 1, 1)
	o1 := ms(2019, 2, 7, 11, 45)
	o2lo, o2hi := day(2020, 6, 1)
	loinc := "http://loinc.org"
	ucum := "http://unitsofmeasure.org"
	return []fixture{
		{typ: "Patient", id: "a", lu: time.Date(2025, 3, 1, 10, 0, 0, 500_000, time.UTC), ix: store.Index{
			Strings:      []store.String{{Param: "family", Norm: "smith", Exact: "Smith"}, {Param: "name", Norm: "50% off", Exact: "50% off"}},
			Dates:        []store.Date{{Param: "birthdate", Lo: b80lo, Hi: b80hi}},
			Tokens:       []store.Token{{Param: "identifier", System: "s", Code: "1"}, {Param: "gender", System: "g", Code: "male", Text: "male"}},
			URIs:         []store.URI{{Param: "_source", Value: "https://x/ods/RA#req1"}},
			Texts:        []store.Text{{Param: "_text", Value: "john smith narrative"}},
			Compartments: comp("a"),
		}},
		{typ: "Patient", id: "b", lu: time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC), ix: store.Index{
			Strings: []store.String{{Param: "family", Norm: "smithson", Exact: "Smithson"}, {Param: "name", Norm: "50x off", Exact: "50x off"}},
			Dates:   []store.Date{{Param: "birthdate", Lo: ms(1990, 1, 1, 0, 0), Hi: ms(1991, 1, 1, 0, 0) - 1}},
			Tokens: []store.Token{{Param: "identifier", System: "s", Code: "2"}, {Param: "gender", System: "g", Code: "female", Text: "female"},
				{Param: "_security", System: "sec", Code: "R"}},
			URIs:         []store.URI{{Param: "_source", Value: "https://x/ods/RB"}, {Param: "url", Value: "http://a.org/fhir/ValueSet/x"}},
			Texts:        []store.Text{{Param: "_content", Value: "jane smithson"}},
			Compartments: comp("b"),
		}},
		{typ: "Patient", id: "c", ix: store.Index{Compartments: comp("c"), URIs: []store.URI{{Param: "_source", Value: "https://x/ods/RAB"}}}},
		{typ: "Observation", id: "o1", ix: store.Index{
			References:   []store.Reference{{Param: "subject", Type: "Patient", ID: "a"}, {Param: "patient", Type: "Patient", ID: "a"}, {Param: "encounter", Type: "Encounter", ID: "e1"}},
			Tokens:       []store.Token{{Param: "code", System: loinc, Code: "8302-2", Text: "body height"}, {Param: "status", Code: "final"}},
			Dates:        []store.Date{{Param: "date", Lo: o1, Hi: o1 + 59999}},
			Quantities:   []store.Quantity{{Param: "value-quantity", System: ucum, Code: "cm", Lo: 172.5, Hi: 172.5}},
			Numbers:      []store.Number{{Param: "probability", Lo: 0.4, Hi: 0.4}},
			Composites:   []store.Composite{{Param: "code-value-quantity", Parts: []store.CompositePart{{System: loinc, Code: "8302-2"}, {System: ucum, Code: "cm", Lo: 172.5, Hi: 172.5}}}},
			Compartments: comp("a"),
		}},
		{typ: "Observation", id: "o2", ix: store.Index{
			References:   []store.Reference{{Param: "subject", Type: "Patient", ID: "a"}, {Param: "patient", Type: "Patient", ID: "a"}},
			Tokens:       []store.Token{{Param: "code", System: loinc, Code: "8302-2", Text: "body height"}, {Param: "status", Code: "amended"}},
			Dates:        []store.Date{{Param: "date", Lo: o2lo, Hi: o2hi}},
			Quantities:   []store.Quantity{{Param: "value-quantity", System: ucum, Code: "cm", Lo: 180, Hi: 180}},
			Composites:   []store.Composite{{Param: "code-value-quantity", Parts: []store.CompositePart{{System: loinc, Code: "8302-2"}, {System: ucum, Code: "cm", Lo: 180, Hi: 180}}}},
			Compartments: comp("a"),
		}},
		{typ: "Observation", id: "o3", ix: store.Index{
			References:   []store.Reference{{Param: "subject", Type: "Patient", ID: "b"}, {Param: "patient", Type: "Patient", ID: "b"}, {Param: "performer", URL: "https://elsewhere.org/Practitioner/9"}},
			Tokens:       []store.Token{{Param: "code", System: loinc, Code: "29463-7", Text: "body weight"}},
			Dates:        []store.Date{{Param: "date", Lo: ms(2019, 5, 1, 0, 0), Hi: ms(2019, 6, 1, 0, 0) - 1}},
			Quantities:   []store.Quantity{{Param: "value-quantity", System: ucum, Code: "kg", Lo: 70, Hi: 70}, {Param: "value-quantity", Code: "kilo", Lo: 70, Hi: 70}},
			Composites:   []store.Composite{{Param: "code-value-quantity", Parts: []store.CompositePart{{System: loinc, Code: "29463-7"}, {System: ucum, Code: "kg", Lo: 70, Hi: 70}}}},
			Compartments: comp("b"),
		}},
		{typ: "Encounter", id: "e1", ix: store.Index{
			Tokens:       []store.Token{{Param: "identifier", System: "s", Code: "dup"}, {Param: "identifier", System: "s", Code: "dup"}},
			References:   []store.Reference{{Param: "patient", Type: "Patient", ID: "a"}, {Param: "service-provider", Type: "Organization", ID: "org"}},
			Compartments: comp("a"),
		}},
		{typ: "Condition", id: "c1", ix: store.Index{
			References:   []store.Reference{{Param: "encounter", Type: "Encounter", ID: "e1"}, {Param: "patient", Type: "Patient", ID: "a"}},
			Compartments: comp("a"),
		}},
		{typ: "Organization", id: "org", ix: store.Index{URIs: []store.URI{{Param: "_source", Value: "https://x/ods/RA"}}}},
	}
}

func TestSearchTranslation(t *testing.T) {
	s := backend.OpenPostgresForTest(t)
	putAll(t, s, searchFixture())
	obs := []string{"Observation"}
	pat := []string{"Patient"}
	cl := func(cs ...store.Cond) store.Clause { return store.Clause(cs) }
	q := func(types []string, clauses ...store.Clause) store.Query {
		return store.Query{Types: types, Clauses: clauses}
	}
	date := func(p store.Prefix, lo, hi int64) store.Cond {
		return store.Cond{Kind: store.CondDate, Param: "date", Prefix: p, Lo: lo, Hi: hi}
	}
	dayDate := func(p store.Prefix, y int, m time.Month, d int) store.Cond {
		lo, hi := day(y, m, d)
		return date(p, lo, hi)
	}
	y2019lo, y2019hi := ms(2019, 1, 1, 0, 0), ms(2020, 1, 1, 0, 0)-1
	feb7lo, feb7hi := day(2019, 2, 7)
	code := func(c string) store.Cond {
		return store.Cond{Kind: store.CondToken, Param: "code", AnySystem: true, Code: c}
	}
	qty := func(p store.Prefix, v float64, unit string) store.Cond {
		c := store.Cond{Kind: store.CondQuantity, Param: "value-quantity", Prefix: p, NumLo: v - 0.05, NumHi: v + 0.05, AnySystem: true, Code: unit}
		if unit == "" {
			c.AnyCode = true
		}
		return c
	}
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"token code in any system", q(obs, cl(code("8302-2"))), []string{"Observation/o1", "Observation/o2"}},
		{"token |code matches only rows without a system", q(obs, cl(store.Cond{Kind: store.CondToken, Param: "status", Code: "final"})), []string{"Observation/o1"}},
		{"token system| matches any code in the system", q(pat, cl(store.Cond{Kind: store.CondToken, Param: "identifier", System: "s", AnyCode: true})), []string{"Patient/a", "Patient/b"}},
		{"token :not matches resources without the element too", q(obs, cl(store.Cond{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "final", Not: true})), []string{"Observation/o2", "Observation/o3"}},
		{"token :text matches the start of the display", q(obs, cl(store.Cond{Kind: store.CondToken, Param: "code", AnySystem: true, Text: true, Code: "body w"})), []string{"Observation/o3"}},
		{":missing=true matches resources without a row of the parameter", q(obs, cl(store.Cond{Kind: store.CondToken, Param: "status", Missing: store.MissingTrue})), []string{"Observation/o3"}},
		{":missing=false matches resources with a row of the parameter", q(pat, cl(store.Cond{Kind: store.CondDate, Param: "birthdate", Missing: store.MissingFalse})), []string{"Patient/a", "Patient/b"}},
		{"string default is starts-with on the normalised value", q(pat, cl(store.Cond{Kind: store.CondString, Param: "family", Value: "smith"})), []string{"Patient/a", "Patient/b"}},
		{"string :exact compares the value as written", q(pat, cl(store.Cond{Kind: store.CondString, Param: "family", Match: store.MatchExact, Value: "Smith"})), []string{"Patient/a"}},
		{"string :exact is case-sensitive", q(pat, cl(store.Cond{Kind: store.CondString, Param: "family", Match: store.MatchExact, Value: "smith"})), nil},
		{"string :contains matches inside the value", q(pat, cl(store.Cond{Kind: store.CondString, Param: "family", Match: store.MatchContains, Value: "hso"})), []string{"Patient/b"}},
		{"string :contains treats % literally", q(pat, cl(store.Cond{Kind: store.CondString, Param: "name", Match: store.MatchContains, Value: "0% "})), []string{"Patient/a"}},
		{"string prefix treats % and _ literally", q(pat, cl(store.Cond{Kind: store.CondString, Param: "name", Value: "50%"})), []string{"Patient/a"}},
		{"date eq matches a row that lies within the range", q(obs, cl(date(store.PrefixEQ, y2019lo, y2019hi))), []string{"Observation/o1", "Observation/o3"}},
		{"date eq does not match a row wider than the range", q(obs, cl(date(store.PrefixEQ, ms(2019, 5, 10, 0, 0), ms(2019, 5, 11, 0, 0)-1))), nil},
		{"date ne matches rows not within the range", q(obs, cl(date(store.PrefixNE, y2019lo, y2019hi))), []string{"Observation/o2"}},
		{"date gt matches rows reaching above the range", q(obs, cl(date(store.PrefixGT, feb7lo, feb7hi))), []string{"Observation/o2", "Observation/o3"}},
		{"date lt matches rows reaching below the range", q(obs, cl(dayDate(store.PrefixLT, 2019, 5, 15))), []string{"Observation/o1", "Observation/o3"}},
		{"date ge is gt or eq", q(obs, cl(date(store.PrefixGE, feb7lo, feb7hi))), []string{"Observation/o1", "Observation/o2", "Observation/o3"}},
		{"date le is lt or eq", q(obs, cl(date(store.PrefixLE, feb7lo, feb7hi))), []string{"Observation/o1"}},
		{"date sa matches rows starting after the range", q(obs, cl(date(store.PrefixSA, y2019lo, y2019hi))), []string{"Observation/o2"}},
		{"date eb matches rows ending before the range", q(obs, cl(date(store.PrefixEB, ms(2019, 3, 1, 0, 0), ms(2019, 4, 1, 0, 0)-1))), []string{"Observation/o1"}},
		{"date ap matches overlapping rows", q(obs, cl(date(store.PrefixAP, ms(2019, 5, 31, 0, 0), ms(2019, 6, 2, 0, 0)))), []string{"Observation/o3"}},
		{"a date range is an AND of two clauses", q(obs, cl(date(store.PrefixGE, y2019lo, y2019hi)), cl(date(store.PrefixLT, y2019lo, y2019hi))), nil},
		{"code and a date range", q(obs, cl(code("8302-2")), cl(dayDate(store.PrefixGE, 2019, 1, 1)), cl(dayDate(store.PrefixLT, 2020, 1, 1))), []string{"Observation/o1"}},
		{"number eq within implicit precision", q(obs, cl(store.Cond{Kind: store.CondNumber, Param: "probability", NumLo: 0.35, NumHi: 0.45})), []string{"Observation/o1"}},
		{"quantity with a unit code", q(obs, cl(qty(store.PrefixEQ, 172.5, "cm"))), []string{"Observation/o1"}},
		{"quantity gt any unit", q(obs, cl(qty(store.PrefixGT, 100, ""))), []string{"Observation/o1", "Observation/o2"}},
		{"quantity unit text matches the code-less row", q(obs, cl(store.Cond{Kind: store.CondQuantity, Param: "value-quantity", NumLo: 69.5, NumHi: 70.5, Code: "kilo"})), []string{"Observation/o3"}},
		{"reference Type/id", q(obs, cl(store.Cond{Kind: store.CondReference, Param: "subject", RefType: "Patient", RefID: "b"})), []string{"Observation/o3"}},
		{"reference bare id matches any type", q(obs, cl(store.Cond{Kind: store.CondReference, Param: "subject", RefID: "a"})), []string{"Observation/o1", "Observation/o2"}},
		{"reference by absolute URL", q(obs, cl(store.Cond{Kind: store.CondReference, Param: "performer", URL: "https://elsewhere.org/Practitioner/9"})), []string{"Observation/o3"}},
		{"uri exact", q(nil, cl(store.Cond{Kind: store.CondURI, Param: "url", Match: store.MatchExact, Value: "http://a.org/fhir/ValueSet/x"})), []string{"Patient/b"}},
		{"uri :below", q(nil, cl(store.Cond{Kind: store.CondURI, Param: "url", Value: "http://a.org/fhir"})), []string{"Patient/b"}},
		{"uri :above", q(nil, cl(store.Cond{Kind: store.CondURI, Param: "url", Match: store.MatchAbove, Value: "http://a.org/fhir/ValueSet/x/_history/2"})), []string{"Patient/b"}},
		{"uri :above does not match a longer value", q(nil, cl(store.Cond{Kind: store.CondURI, Param: "url", Match: store.MatchAbove, Value: "http://a.org/fhir"})), nil},
		{"composite ties its parts to one row", q(obs, cl(store.Cond{Kind: store.CondComposite, Param: "code-value-quantity", Parts: []store.Cond{code("8302-2"), qty(store.PrefixGT, 175, "")}})), []string{"Observation/o2"}},
		{"composite parts in different rows do not match", q(obs, cl(store.Cond{Kind: store.CondComposite, Param: "code-value-quantity", Parts: []store.Cond{code("29463-7"), qty(store.PrefixGT, 175, "")}})), nil},
		{"_text matches every term in one row", q(pat, cl(store.Cond{Kind: store.CondText, Param: "_text", Value: "smith john"})), []string{"Patient/a"}},
		{"_text matches whole terms only", q(pat, cl(store.Cond{Kind: store.CondText, Param: "_text", Value: "smi"})), nil},
		{"_content is its own index", q(pat, cl(store.Cond{Kind: store.CondText, Param: "_content", Value: "smithson"})), []string{"Patient/b"}},
		{"_lastUpdated gt compares at millisecond precision", q(pat, cl(store.Cond{Kind: store.CondLastUpdated, Prefix: store.PrefixGT, Lo: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli(), Hi: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli()})), []string{"Patient/b", "Patient/c"}},
		{"_lastUpdated eq holds for the millisecond", q(pat, cl(store.Cond{Kind: store.CondLastUpdated, Lo: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli(), Hi: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli()})), []string{"Patient/a"}},
		{"_id", q(pat, cl(store.Cond{Kind: store.CondID, Code: "b"})), []string{"Patient/b"}},
		{"_id :not", q(pat, cl(store.Cond{Kind: store.CondID, Code: "b", Not: true})), []string{"Patient/a", "Patient/c"}},
		{"compartment membership over every type", q(nil, cl(store.Cond{Kind: store.CondCompartment, RefType: "Patient", RefID: "b"})), []string{"Patient/b", "Observation/o3"}},
		{"chain: observations of patients named smithson", q(obs, cl(store.Cond{Kind: store.CondChain, Param: "subject", Sub: &store.Query{Types: pat, Clauses: []store.Clause{cl(store.Cond{Kind: store.CondString, Param: "family", Value: "smithson"})}}})), []string{"Observation/o3"}},
		{"chain of two hops", q([]string{"Condition"}, cl(store.Cond{Kind: store.CondChain, Param: "encounter", Sub: &store.Query{Types: []string{"Encounter"}, Clauses: []store.Clause{cl(store.Cond{Kind: store.CondChain, Param: "service-provider", Sub: &store.Query{Types: []string{"Organization"}, Clauses: []store.Clause{cl(store.Cond{Kind: store.CondID, Code: "org"})}}})}}})), []string{"Condition/c1"}},
		{"chain as a non-driving clause", q(obs, cl(code("8302-2")), cl(store.Cond{Kind: store.CondChain, Param: "subject", Sub: &store.Query{Types: pat, Clauses: []store.Clause{cl(store.Cond{Kind: store.CondToken, Param: "identifier", System: "s", Code: "1"})}}})), []string{"Observation/o1", "Observation/o2"}},
		{"_has: patients with a weight observation", q(pat, cl(store.Cond{Kind: store.CondHas, Param: "subject", Sub: &store.Query{Types: obs, Clauses: []store.Clause{cl(code("29463-7"))}}})), []string{"Patient/b"}},
		{"_has nested: patients with an encounter that has a condition", q(pat, cl(store.Cond{Kind: store.CondHas, Param: "patient", Sub: &store.Query{Types: []string{"Encounter"}, Clauses: []store.Clause{cl(store.Cond{Kind: store.CondHas, Param: "encounter", Sub: &store.Query{Types: []string{"Condition"}}})}}})), []string{"Patient/a"}},
		{"_has as a non-driving clause", q(pat, cl(store.Cond{Kind: store.CondString, Param: "family", Value: "smith"}), cl(store.Cond{Kind: store.CondHas, Param: "subject", Sub: &store.Query{Types: obs, Clauses: []store.Clause{cl(code("8302-2"))}}})), []string{"Patient/a"}},
		{"OR within a clause", q(obs, cl(code("29463-7"), store.Cond{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "amended"})), []string{"Observation/o2", "Observation/o3"}},
		{"an empty clause holds for nothing", q(obs, cl()), nil},
		{"a resource with two matching rows is one match", q(obs, cl(store.Cond{Kind: store.CondReference, Param: "subject", RefType: "Patient", RefID: "a"}, store.Cond{Kind: store.CondReference, Param: "patient", RefType: "Patient", RefID: "a"})), []string{"Observation/o1", "Observation/o2"}},
		{"a streamed lookup returns a resource with a repeated row once", q([]string{"Encounter"}, cl(store.Cond{Kind: store.CondToken, Param: "identifier", System: "s", Code: "dup"})), []string{"Encounter/e1"}},
	} {
		got := searchKeys(t, s, tc.q)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSearchFilter(t *testing.T) {
	s := backend.OpenPostgresForTest(t)
	putAll(t, s, searchFixture())
	obs := []string{"Observation"}
	onlyA := &store.Filter{Grants: []store.Grant{{Patients: []string{"a"}}}}
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"Patients restricts matches to the listed compartments", store.Query{Types: obs, Filter: onlyA}, []string{"Observation/o1", "Observation/o2"}},
		{"a Filter without grants hides everything", store.Query{Types: obs, Filter: &store.Filter{}}, nil},
		{"NoPatient admits only resources outside every patient compartment", store.Query{Filter: &store.Filter{Grants: []store.Grant{{NoPatient: true}}}}, []string{"Organization/org"}},
		{"Types restricts types", store.Query{Filter: &store.Filter{Grants: []store.Grant{{Types: []string{"Encounter"}}}}}, []string{"Encounter/e1"}},
		{"Sources admits the source and the source with a fragment, not a longer source", store.Query{Filter: &store.Filter{Grants: []store.Grant{{Sources: []string{"https://x/ods/RA"}}}}}, []string{"Patient/a", "Organization/org"}},
		{"DenyLabels hides labelled resources (any system)", store.Query{Types: []string{"Patient"}, Filter: &store.Filter{Grants: []store.Grant{{DenyLabels: []store.Label{{Code: "R"}}}}}}, []string{"Patient/a", "Patient/c"}},
		{"DenyLabels with a system", store.Query{Types: []string{"Patient"}, Filter: &store.Filter{Grants: []store.Grant{{DenyLabels: []store.Label{{System: "other", Code: "R"}}}}}}, []string{"Patient/a", "Patient/b", "Patient/c"}},
		{"grants are ORed", store.Query{Types: []string{"Patient", "Organization"}, Filter: &store.Filter{Grants: []store.Grant{{Patients: []string{"c"}}, {NoPatient: true}}}}, []string{"Patient/c", "Organization/org"}},
		{"a chain does not traverse a withheld target", store.Query{Types: obs, Filter: &store.Filter{Grants: []store.Grant{{Types: []string{"Observation"}}}},
			Clauses: []store.Clause{{{Kind: store.CondChain, Param: "subject", Sub: &store.Query{Types: []string{"Patient"}}}}}}, nil},
		{"_has does not see a withheld source", store.Query{Types: []string{"Patient"}, Filter: &store.Filter{Grants: []store.Grant{{Types: []string{"Patient"}}}},
			Clauses: []store.Clause{{{Kind: store.CondHas, Param: "subject", Sub: &store.Query{Types: obs}}}}}, nil},
	} {
		got := searchKeys(t, s, tc.q)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// Totals count only what the filter lets through.
	r, err := s.Search(context.Background(), &store.Query{Types: obs, Filter: onlyA, Total: true, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 2 {
		t.Errorf("Total under a filter: got %d, want 2", r.Total)
	}
	// Includes and revincludes never bring in a withheld resource.
	r, err = s.Search(context.Background(), &store.Query{Types: []string{"Encounter"},
		Include:    []store.Include{{SourceType: "Encounter", Param: "service-provider"}, {SourceType: "Encounter", Param: "patient"}},
		RevInclude: []store.Include{{SourceType: "Condition", Param: "encounter"}},
		Filter:     &store.Filter{Grants: []store.Grant{{Types: []string{"Encounter", "Patient"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(r.Included); !slices.Equal(got, []string{"Patient/a"}) {
		t.Errorf("includes under a filter: got %v, want [Patient/a]", got)
	}
}

func keysOf(vs []*store.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Type+"/"+v.ID)
	}
	return out
}

func TestSearchIncludes(t *testing.T) {
	s := backend.OpenPostgresForTest(t)
	putAll(t, s, searchFixture())
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		q         store.Query
		want      []string
		truncated bool
	}{
		{"_include adds the targets, each once, ordered by type and id",
			store.Query{Types: []string{"Observation"}, Include: []store.Include{{SourceType: "Observation", Param: "subject"}}},
			[]string{"Patient/a", "Patient/b"}, false},
		{"_include with a target type",
			store.Query{Types: []string{"Observation"}, Include: []store.Include{{SourceType: "Observation", Param: "encounter", TargetType: "Encounter"}}},
			[]string{"Encounter/e1"}, false},
		{"_include * follows every reference parameter",
			store.Query{Types: []string{"Encounter"}, Include: []store.Include{{Param: "*"}}},
			[]string{"Organization/org", "Patient/a"}, false},
		{"_include never repeats a match",
			store.Query{Types: []string{"Observation", "Patient"}, Include: []store.Include{{SourceType: "Observation", Param: "subject"}}},
			nil, false},
		{"_revinclude adds the referring resources",
			store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{{{Kind: store.CondID, Code: "a"}}}, RevInclude: []store.Include{{SourceType: "Observation", Param: "subject"}}},
			[]string{"Observation/o1", "Observation/o2"}, false},
		{"without :iterate an include is applied to the matches only",
			store.Query{Types: []string{"Condition"}, Include: []store.Include{{SourceType: "Condition", Param: "encounter"}, {SourceType: "Encounter", Param: "service-provider"}}},
			[]string{"Encounter/e1"}, false},
		{":iterate applies to included resources",
			store.Query{Types: []string{"Condition"}, Include: []store.Include{{SourceType: "Condition", Param: "encounter"}, {SourceType: "Encounter", Param: "service-provider", Iterate: true}}},
			[]string{"Encounter/e1", "Organization/org"}, false},
		{"MaxIncluded stops the includes and says so",
			store.Query{Types: []string{"Observation"}, Include: []store.Include{{SourceType: "Observation", Param: "subject"}}, MaxIncluded: 1},
			[]string{"Patient/a"}, true},
	} {
		r, err := s.Search(ctx, &tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := keysOf(r.Included); !slices.Equal(got, tc.want) || r.IncludedTruncated != tc.truncated {
			t.Errorf("%s: got %v (truncated %v), want %v (truncated %v)", tc.name, got, r.IncludedTruncated, tc.want, tc.truncated)
		}
	}
	_, err := s.Search(ctx, &store.Query{Types: []string{"Patient"}, RevInclude: []store.Include{{Param: "*"}}})
	if !fhir.IsKind(err, fhir.ENotSupported) {
		t.Errorf("_revinclude=*: got %v, want ENotSupported", err)
	}
}

// TestSearchSortPaging checks sort orders and that paging by cursor, forward
// and back, neither skips nor repeats a resource whose sort value did not
// change, while other resources are created, updated and deleted between
// pages.
func TestSearchSortPaging(t *testing.T) {
	s := backend.OpenPostgresForTest(t)
	ctx := context.Background()
	var fs []fixture
	// 30 observations; dates in a scrambled order, some equal (ties are
	// broken by rid), some missing (sorted last in both directions).
	for i := range 30 {
		ix := store.Index{Tokens: []store.Token{{Param: "code", Code: "x"}}}
		if i%5 == 1 {
			// Two rows for the same code: still one match.
			ix.Tokens = append(ix.Tokens, store.Token{Param: "code", Code: "x"})
		}
		if i%7 != 3 {
			d := int64((i*11)%13) * 86400000
			ix.Dates = []store.Date{{Param: "date", Lo: d, Hi: d + 999}}
		}
		fs = append(fs, fixture{typ: "Observation", id: fmt.Sprintf("o%02d", i), ix: ix})
	}
	putAll(t, s, fs)
	dateOf := map[string]int64{}
	for _, f := range fs {
		if len(f.ix.Dates) > 0 {
			dateOf[f.id] = f.ix.Dates[0].Lo
		}
	}
	// wantOrder is the order the contract defines: values, missing last,
	// then rid (creation order, the same as id order here).
	wantOrder := func(desc bool) []string {
		ids := make([]string, 0, len(fs))
		for _, f := range fs {
			ids = append(ids, f.id)
		}
		slices.SortStableFunc(ids, func(a, b string) int {
			da, oka := dateOf[a]
			db, okb := dateOf[b]
			switch {
			case !oka && !okb:
				return 0
			case !oka:
				return 1
			case !okb:
				return -1
			}
			if desc {
				da, db = -da, -db
			}
			return int(da - db)
		})
		return ids
	}
	// "x" (any system) is read as a rid set; "|x" (no system) fixes every
	// column before (type, rid), and its sorted pages read the index rows
	// alone (bare): both must give the same pages.
	for _, code := range []store.Cond{
		{Kind: store.CondToken, Param: "code", AnySystem: true, Code: "x"},
		{Kind: store.CondToken, Param: "code", Code: "x"},
	} {
		for _, desc := range []bool{false, true} {
			q := store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{code}},
				Sort: []store.SortKey{{Kind: store.CondDate, Param: "date", Desc: desc}}, Count: 4}
			want := wantOrder(desc)
			var got []string
			var cursors []string
			for page := 0; ; page++ {
				if page > 20 {
					t.Fatal("too many pages")
				}
				r, err := s.Search(ctx, &q)
				if err != nil {
					t.Fatal(err)
				}
				if (page == 0) != (r.Prev == "") {
					t.Errorf("desc=%v page %d: Prev %q", desc, page, r.Prev)
				}
				cursors = append(cursors, q.Cursor)
				for _, v := range r.Versions {
					got = append(got, v.ID)
				}
				if r.Next == "" {
					break
				}
				// Between pages: a new match with no date (sorts last), a
				// deletion of a non-match, and an update of an earlier match
				// that keeps its values.
				putAll(t, s, []fixture{
					{typ: "Observation", id: fmt.Sprintf("late%02d", page), ix: store.Index{Tokens: []store.Token{{Param: "code", Code: "x"}}}},
					{typ: "Observation", id: "o00", ix: fs[0].ix},
				})
				q.Cursor = r.Next
			}
			var orig []string
			for _, id := range got {
				if id[0] == 'o' {
					orig = append(orig, id)
				}
			}
			if !slices.Equal(orig, want) {
				t.Errorf("desc=%v: got order %v, want %v", desc, orig, want)
			}
			// Walking back from the last page with Prev gives the pages again.
			r, err := s.Search(ctx, &store.Query{Types: q.Types, Clauses: q.Clauses, Sort: q.Sort, Count: 4, Cursor: cursors[2]})
			if err != nil {
				t.Fatal(err)
			}
			third := keysOf(r.Versions)
			q.Cursor = r.Prev
			r, err = s.Search(ctx, &q)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := keysOf(r.Versions), prefixed("Observation/", got[4:8]); !slices.Equal(got, want) {
				t.Errorf("desc=%v: Prev of page 3 gave %v, want page 2 %v", desc, got, want)
			}
			q.Cursor = r.Next
			r, err = s.Search(ctx, &q)
			if err != nil {
				t.Fatal(err)
			}
			if got := keysOf(r.Versions); !slices.Equal(got, third) {
				t.Errorf("desc=%v: Next of the Prev page gave %v, want %v", desc, got, third)
			}
		}
	}
	// A cursor of another sort order is refused.
	r, err := s.Search(ctx, &store.Query{Types: []string{"Observation"}, Sort: []store.SortKey{{Kind: store.CondID, Param: "_id"}}, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Search(ctx, &store.Query{Types: []string{"Observation"}, Sort: []store.SortKey{{Kind: store.CondID, Param: "_id", Desc: true}}, Cursor: r.Next})
	if !fhir.IsKind(err, fhir.EInvalid) {
		t.Errorf("cursor of another order: got %v, want EInvalid", err)
	}
	// Several keys: _id descending within the same date.
	got := searchKeys(t, s, store.Query{Types: []string{"Observation"}, Clauses: []store.Clause{{{Kind: store.CondDate, Param: "date", Lo: 0, Hi: 999}}},
		Sort: []store.SortKey{{Kind: store.CondDate, Param: "date"}, {Kind: store.CondID, Param: "_id", Desc: true}}})
	if want := []string{"Observation/o26", "Observation/o13", "Observation/o00"}; !slices.Equal(got, want) {
		t.Errorf("two sort keys: got %v, want %v", got, want)
	}
}

func prefixed(p string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = p + id
	}
	return out
}

// TestSearchNotSupported checks that nodes this store cannot answer
// exactly are errors, never wider results.
func TestSearchNotSupported(t *testing.T) {
	s := backend.OpenPostgresForTest(t)
	for _, tc := range []struct {
		name string
		q    store.Query
	}{
		{"an unknown condition kind", store.Query{Clauses: []store.Clause{{{Kind: 99}}}}},
		{"a text search on another parameter", store.Query{Clauses: []store.Clause{{{Kind: store.CondText, Param: "name", Value: "x"}}}}},
		{"sort by a composite", store.Query{Sort: []store.SortKey{{Kind: store.CondComposite, Param: "code-value-quantity"}}}},
		{":missing on a chain", store.Query{Clauses: []store.Clause{{{Kind: store.CondChain, Param: "subject", Missing: store.MissingTrue, Sub: &store.Query{}}}}}},
		{"a composite of four parts", store.Query{Clauses: []store.Clause{{{Kind: store.CondComposite, Param: "x", Parts: make([]store.Cond, 4)}}}}},
	} {
		_, err := s.Search(context.Background(), &tc.q)
		if !fhir.IsKind(err, fhir.ENotSupported) {
			t.Errorf("%s: got %v, want ENotSupported", tc.name, err)
		}
	}
}
