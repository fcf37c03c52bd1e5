package r4

import "strings"

// typeRow is one type of the generated typeTable; its elements are
// elementTable[first:end].
type typeRow struct {
	name     string
	kind     Kind
	abstract bool
	base     string
	regex    string
	first    int
	end      int
}

// searchParamRow is one search parameter of the generated searchParamTable,
// for one of its base types.
type searchParamRow struct {
	typ string
	SearchParam
}

// choiceRef is an element of choice reached by one of its JSON names
// ("valueQuantity" for value[x] of type Quantity).
type choiceRef struct {
	el       *Element
	typeCode string
}

// buildTypes indexes the generated tables: the Elements map of each type,
// its children lists and the JSON names of its choice elements.
func buildTypes(rows []typeRow, els []Element) map[string]*Type {
	m := make(map[string]*Type, len(rows))
	for _, r := range rows {
		t := &Type{
			Name: r.name, Kind: r.kind, Abstract: r.abstract, Base: r.base, Regex: r.regex,
			Elements: make(map[string]*Element, r.end-r.first),
			children: map[string][]*Element{},
			choices:  map[string]choiceRef{},
		}
		for i := r.first; i < r.end; i++ {
			e := &els[i]
			rel := e.Path[len(r.name)+1:]
			t.Elements[rel] = e
			parent := ""
			if j := strings.LastIndexByte(rel, '.'); j >= 0 {
				parent = rel[:j]
			}
			t.children[parent] = append(t.children[parent], e)
			if e.Choice {
				for _, tc := range e.Types {
					t.choices[join(parent, e.Name+upperFirst(tc))] = choiceRef{e, tc}
				}
			}
		}
		m[r.name] = t
	}
	return m
}

// buildSearchParams gives every concrete resource type its own parameters
// plus those defined on Resource and, for domain resources, DomainResource.
func buildSearchParams(rows []searchParamRow) map[string]map[string]*SearchParam {
	byType := map[string]map[string]*SearchParam{}
	for i := range rows {
		r := &rows[i]
		if byType[r.typ] == nil {
			byType[r.typ] = map[string]*SearchParam{}
		}
		byType[r.typ][r.Name] = &r.SearchParam
	}
	m := make(map[string]map[string]*SearchParam, len(resourceTypes))
	for _, name := range resourceTypes {
		ps := map[string]*SearchParam{}
		// Walk the base chain from the root so that a type's own definition
		// of a name wins over an inherited one.
		var chain []string
		for t := types[name]; t != nil; t = types[t.Base] {
			chain = append(chain, t.Name)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			for code, p := range byType[chain[i]] {
				ps[code] = p
			}
		}
		m[name] = ps
	}
	return m
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
