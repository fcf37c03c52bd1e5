package storetest

import (
	"fmt"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
)

// The access filter (store.Filter) tests a resource's meta.source and
// meta.security. A backend may keep what it needs of them on the
// resource's own row (store.Index.Source, Labels) rather than probe the index rows;
// these tests hold such a copy to the index rows it stands for, through
// every kind of write and through a schema migration that fills it in.

const (
	srcA     = "https://x.example/ods/RA"
	srcB     = "https://x.example/ods/RB"
	secSys   = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	otherSys = "http://other.example/labels"
)

func accessIndex(source string, labels ...string) store.Index {
	ix := store.Index{Compartments: []store.Compartment{{Type: "Patient", ID: "p"}}}
	if source != "" {
		ix.URIs = []store.URI{{Param: "_source", Value: source}}
	}
	for _, l := range labels {
		ix.Tokens = append(ix.Tokens, store.Token{Param: "_security", System: secSys, Code: l})
	}
	return ix
}

func grants(gs ...store.Grant) *store.Filter { return &store.Filter{Grants: gs} }

var denyR = []store.Label{{System: secSys, Code: "R"}}

// filtered returns the Observations f lets through, found two ways that
// backends plan differently: a scan of the type, and the members of
// Patient/p's compartment (a driving clause). Both must agree.
func filtered(t testing.TB, s store.Store, f *store.Filter) []string {
	t.Helper()
	scan := SearchIDs(t, s, store.Query{Types: []string{"Observation"}, Filter: f})
	member := SearchIDs(t, s, store.Query{Types: []string{"Observation"}, Filter: f,
		Clauses: []store.Clause{{{Kind: store.CondCompartment, RefType: "Patient", RefID: "p"}}}})
	equalStrings(t, "the compartment search against the type scan", member, scan)
	return scan
}

// PutAccessFixture writes Observations whose sources and labels
// CheckAccessFixture expects.
func PutAccessFixture(t testing.TB, s store.Store) {
	t.Helper()
	for _, r := range []struct {
		id     string
		source string
		labels []string
	}{
		{"a", srcA + "#req1", nil},
		{"b", srcB, []string{"R"}},
		{"c", "", []string{"R"}},
		{"d", srcB, nil},
	} {
		put(t, s, &store.Put{Type: "Observation", ID: r.id, VersionID: 1, Index: accessIndex(r.source, r.labels...)})
	}
}

// CheckAccessFixture checks that access filters over PutAccessFixture's
// Observations pass exactly the ones their sources and labels allow.
func CheckAccessFixture(t testing.TB, s store.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		f    *store.Filter
		want []string
	}{
		{"a source admits its own records, with or without a fragment", grants(store.Grant{Sources: []string{srcA}}), []string{"Observation/a"}},
		{"a source with a fragment admits that fragment", grants(store.Grant{Sources: []string{srcA + "#req1"}}), []string{"Observation/a"}},
		{"another source", grants(store.Grant{Sources: []string{srcB}}), []string{"Observation/b", "Observation/d"}},
		{"a denied label hides labelled records", grants(store.Grant{DenyLabels: denyR}), []string{"Observation/a", "Observation/d"}},
		{"a label denied in another system hides nothing", grants(store.Grant{DenyLabels: []store.Label{{System: otherSys, Code: "R"}}}),
			[]string{"Observation/a", "Observation/b", "Observation/c", "Observation/d"}},
		{"a source and a denied label", grants(store.Grant{Sources: []string{srcB}, DenyLabels: denyR}), []string{"Observation/d"}},
		{"two grants, the union", grants(store.Grant{Sources: []string{srcA}}, store.Grant{Sources: []string{srcB}, DenyLabels: denyR}),
			[]string{"Observation/a", "Observation/d"}},
	} {
		equalStrings(t, tc.name, filtered(t, s, tc.f), tc.want)
	}
}

func testAccessFixture(t *testing.T, h Harness) {
	s := h.Open(t)
	PutAccessFixture(t, s)
	CheckAccessFixture(t, s)
}

func testAccessFollowsWrites(t *testing.T, h Harness) {
	s := h.Open(t)
	onlyA := grants(store.Grant{Sources: []string{srcA}})
	onlyB := grants(store.Grant{Sources: []string{srcB}})
	notR := grants(store.Grant{DenyLabels: denyR})
	bNotR := grants(store.Grant{Sources: []string{srcB}, DenyLabels: denyR})
	x := []string{"Observation/x"}
	step := func(what string, f *store.Filter, want []string) {
		t.Helper()
		equalStrings(t, what, filtered(t, s, f), want)
	}
	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 1, Index: accessIndex(srcA)})
	step("created with source A, by source A", onlyA, x)
	step("created with source A, by source B", onlyB, nil)

	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 2, Index: accessIndex(srcB)})
	step("updated to source B, by source A", onlyA, nil)
	step("updated to source B, by source B", onlyB, x)

	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 3, Index: accessIndex(srcB, "R")})
	step("labelled R, R denied", notR, nil)
	step("labelled R, source B with R denied", bNotR, nil)
	step("labelled R, by source B", onlyB, x)

	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 4, Index: accessIndex("")})
	step("source and label removed, by source B", onlyB, nil)
	step("source and label removed, R denied", notR, x)

	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 5, Deleted: true})
	step("deleted, R denied", notR, nil)

	put(t, s, &store.Put{Type: "Observation", ID: "x", VersionID: 6, Index: accessIndex(srcA, "R")})
	step("re-created with source A and R, source A", onlyA, x)
	step("re-created with source A and R, R denied", notR, nil)

	reindexed := false
	err := s.Write(ctxT(t), func(tx store.Tx) error {
		r, ok := tx.(store.Reindexer)
		if !ok {
			return nil
		}
		reindexed = true
		return r.Reindex(ctxT(t), "Observation", "x", 6, accessIndex(srcB))
	})
	if err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	if reindexed {
		step("reindexed to source B without labels, source B with R denied", bNotR, x)
		step("reindexed to source B without labels, source A", onlyA, nil)
	}
}

// testFilterReuse: backends keep the SQL of a filter and reuse it
// (store.FilterCache), so the same filter must keep giving its own answer
// wherever it is used, and two filters that differ anywhere, however
// little, never share one.
func testFilterReuse(t *testing.T, h Harness) {
	s := h.Open(t)
	PutAccessFixture(t, s)
	all := []string{"Observation/a", "Observation/b", "Observation/c", "Observation/d"}
	changing := grants(store.Grant{Sources: []string{srcB}})
	for _, tc := range []struct {
		name string
		f    *store.Filter
		want []string
	}{
		{"a filter", changing, []string{"Observation/b", "Observation/d"}},
		{"the same content in another filter", grants(store.Grant{Sources: []string{srcB}}), []string{"Observation/b", "Observation/d"}},
		{"another source", grants(store.Grant{Sources: []string{srcA}}), []string{"Observation/a"}},
		{"a source that is a prefix of others' admits none of them", grants(store.Grant{Sources: []string{"https://x.example/ods/R"}}), nil},
		{"no type test (nil) lets every type through", grants(store.Grant{Types: nil}), all},
		{"an empty type list (not nil) lets nothing through", grants(store.Grant{Types: []string{}}), nil},
		{"an empty people list (not nil) lets nothing through", grants(store.Grant{Patients: []string{}}), nil},
		{"a label denied in any system", grants(store.Grant{DenyLabels: []store.Label{{Code: "R"}}}), []string{"Observation/a", "Observation/d"}},
		{"a label of any characters is compared as it is", grants(store.Grant{DenyLabels: []store.Label{{Code: "R' OR 1=1 --"}, {Code: "R?"}, {System: "o'ther", Code: "R"}}}), all},
		{"a plain label and one needing care, together", grants(store.Grant{DenyLabels: []store.Label{{Code: "R?"}, {System: secSys, Code: "R"}}}), []string{"Observation/a", "Observation/d"}},
		{"a source with a fragment admits that fragment", grants(store.Grant{Sources: []string{srcA + "#req1"}}), []string{"Observation/a"}},
		{"a source with another fragment admits nothing", grants(store.Grant{Sources: []string{srcA + "#req"}}), nil},
		{"several sources, one with a fragment", grants(store.Grant{Sources: []string{srcA + "#req1", srcB}}), []string{"Observation/a", "Observation/b", "Observation/d"}},
		{"a source holding a placeholder's character", grants(store.Grant{Sources: []string{srcB + "?x", srcA}}), []string{"Observation/a"}},
	} {
		for round := range 2 {
			equalStrings(t, fmt.Sprintf("%s (round %d)", tc.name, round), filtered(t, s, tc.f), tc.want)
		}
	}
	// A filter changed in place after it was used is answered by what it
	// now says.
	changing.Grants[0].Sources[0] = srcA
	equalStrings(t, "a filter changed after use", filtered(t, s, changing), []string{"Observation/a"})
}

// testAccessLabelsWithSources: a grant that requires a source and denies
// labels (every sharing agreement's) tests the labels as exactly as a
// grant without a source: by code in any system, or by system and code,
// whatever characters they hold, alone or beside other grants. The
// PostgreSQL store tests them on the source row (migration 0010), where
// they are written as an array literal.
func testAccessLabelsWithSources(t *testing.T, h Harness) {
	s := h.Open(t)
	const (
		oddSys  = `http://x.example/"q"\sys{a,b}`
		oddCode = `a b,{c}"\`
	)
	for _, r := range []struct {
		id     string
		labels []store.Label
	}{
		{"l1", []store.Label{{System: secSys, Code: "R"}}},
		{"l2", []store.Label{{System: oddSys, Code: oddCode}}},
		{"l3", nil},
		{"l4", []store.Label{{Code: "V"}}},
	} {
		ix := accessIndex(srcA)
		for _, l := range r.labels {
			ix.Tokens = append(ix.Tokens, store.Token{Param: "_security", System: l.System, Code: l.Code})
		}
		put(t, s, &store.Put{Type: "Observation", ID: r.id, VersionID: 1, Index: ix})
	}
	fromA := func(deny ...store.Label) store.Grant { return store.Grant{Sources: []string{srcA}, DenyLabels: deny} }
	all := []string{"Observation/l1", "Observation/l2", "Observation/l3", "Observation/l4"}
	for _, tc := range []struct {
		name string
		f    *store.Filter
		want []string
	}{
		{"a code in any system", grants(fromA(store.Label{Code: "R"})), []string{"Observation/l2", "Observation/l3", "Observation/l4"}},
		{"a system and code", grants(fromA(store.Label{System: secSys, Code: "R"})), []string{"Observation/l2", "Observation/l3", "Observation/l4"}},
		{"a code in another system", grants(fromA(store.Label{System: otherSys, Code: "R"})), all},
		{"odd characters, system and code", grants(fromA(store.Label{System: oddSys, Code: oddCode})), []string{"Observation/l1", "Observation/l3", "Observation/l4"}},
		{"odd characters, code alone", grants(fromA(store.Label{Code: oddCode})), []string{"Observation/l1", "Observation/l3", "Observation/l4"}},
		{"an odd system with another code", grants(fromA(store.Label{System: oddSys, Code: "R"})), all},
		{"a label without a system, by code", grants(fromA(store.Label{Code: "V"})), []string{"Observation/l1", "Observation/l2", "Observation/l3"}},
		{"a label without a system, by a system", grants(fromA(store.Label{System: secSys, Code: "V"})), all},
		{"several labels", grants(fromA(store.Label{Code: "V"}, store.Label{Code: oddCode}, store.Label{System: secSys, Code: "R"})), []string{"Observation/l3"}},
		{"beside a grant of another source", grants(store.Grant{Sources: []string{srcB}}, fromA(store.Label{Code: "R"})),
			[]string{"Observation/l2", "Observation/l3", "Observation/l4"}},
		{"two grants of the source, the union", grants(fromA(store.Label{Code: "R"}), fromA(store.Label{Code: "V"})), all},
		{"beside a grant without a source", grants(store.Grant{Types: []string{"Patient"}}, fromA(store.Label{Code: "R"})),
			[]string{"Observation/l2", "Observation/l3", "Observation/l4"}},
	} {
		equalStrings(t, tc.name, filtered(t, s, tc.f), tc.want)
	}
}
