package search

import (
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// ParamDoc describes one search parameter as this server supports it, for
// the CapabilityStatement.
type ParamDoc struct {
	Name       string
	Type       string
	Definition string
	Doc        string
}

// modifierDoc says which modifiers and forms each kind supports.
var modifierDoc = map[string]string{
	"string":    "Starts-with, case- and accent-insensitive; :exact, :contains, :missing.",
	"token":     "code, system|code, |code, system|; :not, :text, :of-type (identifiers), :missing. Not :in, :not-in, :below, :above.",
	"reference": "Type/id, id, absolute URL; :Type, :identifier, :missing; chaining to any depth.",
	"date":      "Every precision; prefixes eq ne lt gt le ge sa eb ap over ranges; :missing.",
	"number":    "Prefixes eq ne lt gt le ge sa eb ap; implicit precision; :missing.",
	"quantity":  "Prefixes; number|system|code and number||code; :missing. No unit conversion.",
	"uri":       "Exact; :below, :above, :missing.",
	"composite": "Values joined by $, tied to one element; :missing.",
}

// Params lists the search parameters supported on typ: every R4 parameter
// of the type except the special ones (near and the like), plus _id,
// _lastUpdated, _text and _content.
func Params(typ string) []ParamDoc {
	var out []ParamDoc
	for _, name := range sortedKeys(r4.SearchParams(typ)) {
		sp := r4.SearchParams(typ)[name]
		doc := modifierDoc[sp.Type]
		switch name {
		case "_id":
			doc = "Logical id; comma-separated values are alternatives."
		case "_lastUpdated":
			doc = modifierDoc["date"]
		case "_text", "_content":
			doc = "Every word must occur (case- and accent-insensitive)."
		default:
			if sp.Type == "special" || doc == "" || unsupportedParams[name] {
				continue
			}
		}
		out = append(out, ParamDoc{Name: name, Type: map[bool]string{true: "string", false: sp.Type}[sp.Type == "special"], Definition: sp.URL, Doc: doc})
	}
	return out
}
