package search

import (
	"slices"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Union parameters.
//
// R4 defines some search parameters as the union of others of the same
// type: Observation combo-code is "Observation.code |
// Observation.component.code", exactly code and component-code together;
// combo-value-quantity and the combo composites likewise. Indexing them
// would write every such value twice (on Synthea a quarter of all index
// rows, and index rows are what bounds ingest on SQLite's single writer),
// so the indexer leaves them out and a search on one is answered from its
// members' rows: a value condition holds when it holds for any member (an
// OR), a :not or :missing=true condition when it holds for every member
// (an AND), and a sort takes the rows of every member.
//
// A parameter is a union when the top-level "|" branches of its expression
// (restricted to the type) are exactly the branches of two or more other
// parameters of the same kind, each branch belonging to one of them; for a
// composite, when its base expression's branches are its members' and the
// components have the same kinds and expressions in the same order.
// Reference parameters are never treated so (their rows carry
// per-parameter forms such as :identifier).

// unionMembers returns the member parameters of typ's parameter name when
// it is a union, nil otherwise.
func unionMembers(typ, name string) []string {
	compileOnce.Do(compileAll)
	return unions[typ][name]
}

// findUnions records in unions every union parameter of every type and
// removes it from compiled (so it is never indexed). It runs once, from
// compileAll.
func findUnions() {
	unions = map[string]map[string][]string{}
	for typ, ps := range compiled {
		defs := r4.SearchParams(typ)
		branches := map[string][]string{}
		for _, p := range ps {
			branches[p.name] = unionBranches(defs[p.name], typ)
		}
		isMember := func(p, q *param) bool {
			if q == p || q.kind != p.kind || len(branches[q.name]) >= len(branches[p.name]) {
				return false
			}
			if p.kind == "composite" && !sameComponents(defs[p.name], defs[q.name]) {
				return false
			}
			for _, b := range branches[q.name] {
				if !slices.Contains(branches[p.name], b) {
					return false
				}
			}
			return true
		}
		for _, p := range ps {
			if p.kind == "reference" || p.kind == "special" || len(branches[p.name]) < 2 {
				continue
			}
			var members []string
			covered := map[string]bool{}
			for _, q := range ps {
				if !isMember(p, q) {
					continue
				}
				disjoint := true
				for _, b := range branches[q.name] {
					disjoint = disjoint && !covered[b]
				}
				if !disjoint {
					continue
				}
				for _, b := range branches[q.name] {
					covered[b] = true
				}
				members = append(members, q.name)
			}
			if len(members) >= 2 && len(covered) == len(branches[p.name]) {
				if unions[typ] == nil {
					unions[typ] = map[string][]string{}
				}
				unions[typ][p.name] = members
			}
		}
		// A member is never itself a union (its branches are fewer), so
		// removing the unions leaves every member indexed.
		compiled[typ] = slices.DeleteFunc(ps, func(p *param) bool { return unions[typ][p.name] != nil })
	}
}

// unionBranches returns the top-level union branches of sp's expression
// restricted to typ, spaces trimmed, outer parentheses kept as written.
func unionBranches(sp *r4.SearchParam, typ string) []string {
	var out []string
	for _, b := range splitUnion(restrictExpr(sp.Expression, typ)) {
		if b = strings.TrimSpace(b); b != "" && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// sameComponents reports whether composites a and b have components of the
// same kinds and expressions, in the same order.
func sameComponents(a, b *r4.SearchParam) bool {
	if len(a.Components) != len(b.Components) {
		return false
	}
	for i := range a.Components {
		da, db := defsByURL[a.Components[i].Definition], defsByURL[b.Components[i].Definition] // compileAll has set defsByURL
		if da == nil || db == nil || da.Type != db.Type || a.Components[i].Expression != b.Components[i].Expression {
			return false
		}
	}
	return true
}

// membersOn returns the members of name on types when it is a union there,
// nil when it is a union on none of them, and an error when it is a union
// on some and not others (R4 has no such parameter; a query that cannot be
// answered exactly is refused rather than widened).
func membersOn(types []string, name string) ([]string, error) {
	var members []string
	plain := false
	for _, t := range types {
		if r4.SearchParams(t)[name] == nil {
			continue
		}
		m := unionMembers(t, name)
		switch {
		case m == nil:
			plain = true
		case members == nil:
			members = m
		case !slices.Equal(m, members):
			plain = true // different members: as unanswerable as a mix
		}
	}
	if members != nil && plain {
		return nil, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q cannot be searched on %s together; search one type at a time", trunc(name), typesText(types))
	}
	return members, nil
}

// expandUnions rewrites every condition and sort key on a union parameter
// in q (and its chains and _has, to any depth) into conditions on its
// members.
func expandUnions(q *store.Query) error {
	var clauses []store.Clause
	for _, cl := range q.Clauses {
		var or store.Clause
		for _, c := range cl {
			if c.Sub != nil {
				sub := *c.Sub
				if err := expandUnions(&sub); err != nil {
					return err
				}
				c.Sub = &sub
			}
			var members []string
			if c.Kind != store.CondChain && c.Kind != store.CondHas && c.Kind != store.CondID && c.Kind != store.CondLastUpdated && c.Kind != store.CondCompartment {
				m, err := membersOn(q.Types, c.Param)
				if err != nil {
					return err
				}
				members = m
			}
			switch {
			case members == nil:
				or = append(or, c)
			case c.Not || c.Missing == store.MissingTrue:
				// Holds when it holds for every member: one clause each.
				if len(cl) != 1 {
					return fhir.Errorf(fhir.ENotSupported, "", "search parameter %q: this combination of values cannot be searched exactly", trunc(c.Param))
				}
				for _, m := range members {
					mc := c
					mc.Param = m
					clauses = append(clauses, store.Clause{mc})
				}
			default:
				for _, m := range members {
					mc := c
					mc.Param = m
					or = append(or, mc)
				}
			}
		}
		if len(or) > 0 {
			clauses = append(clauses, or)
		}
	}
	q.Clauses = clauses
	for i, k := range q.Sort {
		if k.Kind == store.CondID || k.Kind == store.CondLastUpdated {
			continue
		}
		members, err := membersOn(q.Types, k.Param)
		if err != nil {
			return err
		}
		if members != nil {
			q.Sort[i].Param, q.Sort[i].Also = members[0], members[1:]
		}
	}
	return nil
}
