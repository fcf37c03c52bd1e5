package search

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/fhirpath"
	"github.com/sharedcare/sharedcare/internal/store"
)

// R4 defines Observation's combo-* parameters as the union of the plain
// parameter and its component-* twin (search parameter registry, 4.0.1);
// no other R4 parameter is the union of others of the same kind.
func TestUnionParametersAreObservationCombos(t *testing.T) {
	compileOnce.Do(compileAll)
	want := map[string]map[string][]string{"Observation": {
		"combo-code":                {"code", "component-code"},
		"combo-data-absent-reason":  {"component-data-absent-reason", "data-absent-reason"},
		"combo-value-concept":       {"component-value-concept", "value-concept"},
		"combo-value-quantity":      {"component-value-quantity", "value-quantity"},
		"combo-code-value-quantity": {"code-value-quantity", "component-code-value-quantity"},
		"combo-code-value-concept":  {"code-value-concept", "component-code-value-concept"},
	}}
	if len(unions) != len(want) || !maps.EqualFunc(unions["Observation"], want["Observation"], slices.Equal) {
		t.Errorf("unions = %v, want %v", unions, want)
	}
	for _, p := range params("Observation") {
		if want["Observation"][p.name] != nil {
			t.Errorf("union parameter %s is still indexed", p.name)
		}
	}
}

// The rows a union parameter would have are exactly its members' rows,
// over real data: what makes answering it from the members exact.
func TestUnionRowsAreTheMembersRowsOverSynthea(t *testing.T) {
	rs := syntheaResources(t, 1000)
	ix := &Indexer{Base: "http://node.test/fhir"}
	checked := map[string]int{}
	for _, r := range rs {
		typ, _ := r["resourceType"].(string)
		for name, members := range unions[typ] {
			own := rowsOfParam(t, ix, typ, name, r)
			var fromMembers []string
			idx := ix.Index(typ, r)
			for _, row := range rowStrings(&idx) {
				for _, m := range members {
					if row.param == m {
						fromMembers = append(fromMembers, row.value)
					}
				}
			}
			slices.Sort(own)
			slices.Sort(fromMembers)
			if !slices.Equal(own, fromMembers) {
				t.Fatalf("%s/%v %s: own rows %v, members' rows %v", typ, r["id"], name, own, fromMembers)
			}
			checked[name] += len(own)
		}
	}
	t.Logf("rows checked per union parameter: %v", checked)
	if checked["combo-code"] == 0 || checked["combo-code-value-quantity"] == 0 {
		t.Fatalf("the sample exercised too little: %v", checked)
	}
}

// rowsOfParam extracts the rows the indexer would write for typ's
// parameter name if it indexed it, each as its value without the name.
func rowsOfParam(t *testing.T, ix *Indexer, typ, name string, r fhir.Object) []string {
	t.Helper()
	sp := r4.SearchParams(typ)[name]
	p := &param{name: name, kind: sp.Type, expr: mustCompile(t, restrictExpr(sp.Expression, typ))}
	for _, c := range sp.Components {
		p.comps = append(p.comps, component{kind: defsByURL[c.Definition].Type, expr: mustCompile(t, c.Expression)})
	}
	var idx store.Index
	x := extractor{ix: ix, idx: &idx}
	vals, err := p.expr.Evaluate(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.kind == "composite" {
		x.composite(p, r, vals)
	} else {
		for _, v := range vals {
			x.value(p.name, p.kind, v.Type(), v.JSON())
		}
	}
	var out []string
	for _, row := range rowStrings(&idx) {
		out = append(out, row.value)
	}
	return out
}

func mustCompile(t *testing.T, src string) *fhirpath.Expression {
	t.Helper()
	e, err := fhirpath.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type namedRow struct{ param, value string }

// rowStrings flattens the value rows of idx (not text or compartments).
func rowStrings(idx *store.Index) []namedRow {
	var out []namedRow
	add := func(param string, v any) {
		out = append(out, namedRow{param, fmt.Sprintf("%T%+v", v, v)})
	}
	for _, r := range idx.Tokens {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	for _, r := range idx.Quantities {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	for _, r := range idx.Composites {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	for _, r := range idx.Strings {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	for _, r := range idx.Dates {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	for _, r := range idx.Numbers {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	for _, r := range idx.URIs {
		p := r.Param
		r.Param = ""
		add(p, r)
	}
	return out
}
