package engine

import (
	"strings"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/store"
)

// This file extracts the search index rows of a resource. For now it serves
// the token parameters whose R4 expression is the plain path
// Type.identifier (identifier on every type that has it); the full search
// engine replaces indexResource with extraction of every search parameter
// driven by the FHIRPath expressions.

// indexResource returns the index rows of resource r of type typ.
func indexResource(typ string, r fhir.Object) store.Index {
	var idx store.Index
	for _, param := range identifierParams(typ) {
		switch v := r["identifier"].(type) {
		case []any:
			for _, it := range v {
				if o, ok := it.(fhir.Object); ok {
					idx.Tokens = appendIdentifier(idx.Tokens, param, o)
				}
			}
		case fhir.Object: // identifier is 0..1 on some types (Bundle, QuestionnaireResponse)
			idx.Tokens = appendIdentifier(idx.Tokens, param, v)
		}
	}
	return idx
}

func appendIdentifier(rows []store.Token, param string, id fhir.Object) []store.Token {
	value, _ := id["value"].(string)
	system, _ := id["system"].(string)
	if value == "" && system == "" {
		return rows
	}
	var text string
	if t, ok := id["type"].(fhir.Object); ok {
		text, _ = t["text"].(string)
	}
	return append(rows, store.Token{Param: param, System: system, Code: value, Text: text})
}

var (
	identParamsOnce sync.Once
	identParams     map[string][]string // type -> token parameters indexing Type.identifier
)

// identifierParams lists the token search parameters of typ whose R4
// expression, for typ, is exactly typ.identifier.
func identifierParams(typ string) []string {
	identParamsOnce.Do(func() {
		identParams = map[string][]string{}
		for _, t := range r4.ResourceTypes() {
			for name, sp := range r4.SearchParams(t) {
				if sp.Type == "token" && simpleIdentifierPath(t, sp.Expression) {
					identParams[t] = append(identParams[t], name)
				}
			}
		}
	})
	return identParams[typ]
}

// simpleIdentifierPath reports whether expr, a FHIRPath union such as
// "Account.identifier | Patient.identifier", has typ.identifier as its
// part for typ.
func simpleIdentifierPath(typ, expr string) bool {
	for part := range strings.SplitSeq(expr, "|") {
		part = strings.TrimSpace(part)
		if part == typ+".identifier" {
			return true
		}
	}
	return false
}

// supportedTokenParam reports whether param is a token parameter this
// engine indexes for typ.
func supportedTokenParam(typ, param string) bool {
	for _, p := range identifierParams(typ) {
		if p == param {
			return true
		}
	}
	return false
}
