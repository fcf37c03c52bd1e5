package search

import (
	"slices"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// subsetted is the tag a server puts on a resource it returns incompletely
// (R4 search.html 3.1.1.5.7 _summary and _elements).
var subsetted = fhir.Object{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}

// Shape returns r reduced as _summary (true, text, data, count, false) and
// _elements ask, tagged SUBSETTED when anything was removed. _summary=true
// keeps the elements the R4 definitions mark as summary; text keeps text,
// id, meta and mandatory elements; data removes text; _elements keeps the
// listed top-level elements plus id, meta and mandatory elements.
func Shape(typ string, r fhir.Object, summary string, elements []string) fhir.Object {
	t := r4.Lookup(typ)
	keep := func(name string) bool { return true }
	switch {
	case summary == "true":
		keep = func(name string) bool {
			el, _, ok := elementOf(t, name)
			return ok && (el.Summary || el.Min > 0)
		}
	case summary == "text":
		keep = func(name string) bool {
			if name == "text" {
				return true
			}
			el, _, ok := elementOf(t, name)
			return ok && el.Min > 0
		}
	case summary == "data":
		keep = func(name string) bool { return name != "text" }
	case len(elements) > 0:
		keep = func(name string) bool {
			if slices.Contains(elements, name) {
				return true
			}
			el, _, ok := elementOf(t, name)
			if ok && el.Choice {
				if slices.Contains(elements, el.Name) {
					return true
				}
			}
			return ok && el.Min > 0
		}
	}
	out := fhir.Object{}
	removed := false
	for k, v := range r {
		name := k
		if len(k) > 1 && k[0] == '_' {
			name = k[1:]
		}
		switch name {
		case "resourceType", "id", "meta":
			out[k] = v
			continue
		}
		if keep(name) {
			out[k] = v
		} else {
			removed = true
		}
	}
	if removed {
		meta := fhir.Object{}
		if m, ok := out["meta"].(fhir.Object); ok {
			meta = fhir.Clone(m).(fhir.Object)
		}
		tags, _ := meta["tag"].([]any)
		meta["tag"] = append(slices.Clone(tags), subsetted)
		out["meta"] = meta
	}
	return out
}

func elementOf(t *r4.Type, name string) (*r4.Element, string, bool) {
	if t == nil {
		return nil, "", false
	}
	return t.Child("", name)
}
