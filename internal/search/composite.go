package search

import (
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhirpath"
	"github.com/sharedcare/sharedcare/internal/store"
)

// composite indexes a composite parameter: for each node the base
// expression selects (an Observation, one of its components, a useContext)
// the component expressions are evaluated on that node, and every
// combination of their values becomes one Composite row, so a search ties
// its parts to the same element (R4 search.html 3.1.1.4.9 "composite").
func (x *extractor) composite(p *param, r fhir.Object, nodes []fhirpath.Value) {
	for _, n := range nodes {
		combos := [][]store.CompositePart{nil}
		for _, c := range p.comps {
			vals, err := c.expr.EvaluateOn(r, n)
			if err != nil {
				return
			}
			var parts []store.CompositePart
			for _, v := range vals {
				parts = append(parts, x.parts(c.kind, v.Type(), v.JSON())...)
			}
			if len(parts) == 0 {
				combos = nil
				break
			}
			next := make([][]store.CompositePart, 0, len(combos)*len(parts))
			for _, prefix := range combos {
				for _, part := range parts {
					row := append(append(make([]store.CompositePart, 0, len(p.comps)), prefix...), part)
					next = append(next, row)
				}
			}
			combos = next
		}
		for _, parts := range combos {
			x.idx.Composites = append(x.idx.Composites, store.Composite{Param: p.name, Parts: parts})
		}
	}
}

// parts converts one component value into the parts it can stand for,
// reusing the ordinary extraction into a scratch index.
func (x *extractor) parts(kind, ftype string, v any) []store.CompositePart {
	var idx store.Index
	sx := extractor{ix: x.ix, idx: &idx}
	sx.value("", kind, ftype, v)
	var out []store.CompositePart
	for _, t := range idx.Tokens {
		if t.Param == "" {
			out = append(out, store.CompositePart{System: t.System, Code: t.Code, Text: t.Text})
		}
	}
	for _, s := range idx.Strings {
		out = append(out, store.CompositePart{Code: s.Norm, Text: s.Exact})
	}
	for _, u := range idx.URIs {
		out = append(out, store.CompositePart{Code: u.Value})
	}
	for _, r := range idx.References {
		code := r.URL
		if r.ID != "" {
			code = r.Type + "/" + r.ID
		}
		out = append(out, store.CompositePart{Code: code})
	}
	for _, d := range idx.Dates {
		out = append(out, store.CompositePart{Lo: float64(d.Lo), Hi: float64(d.Hi)})
	}
	for _, n := range idx.Numbers {
		out = append(out, store.CompositePart{Lo: n.Lo, Hi: n.Hi})
	}
	for _, q := range idx.Quantities {
		out = append(out, store.CompositePart{System: q.System, Code: q.Code, Lo: q.Lo, Hi: q.Hi})
	}
	return out
}
