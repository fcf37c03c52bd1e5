package search

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Page sizes (_count): a default when the client gives none and a cap so
// that one request cannot ask for the whole store.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// Options are the switches of one parse.
type Options struct {
	// Strict makes unknown parameters an error (Prefer: handling=strict);
	// otherwise they are ignored and listed in Request.Ignored.
	Strict bool
	// Conditional parses the criteria of a conditional interaction: every
	// parameter must be understood, result parameters are refused and at
	// least one criterion is needed (an ignored criterion would widen the
	// match).
	Conditional bool
	// Base is the server's absolute FHIR base, so that an absolute
	// reference value under it means the local resource.
	Base string
	// Now is the clock for ap (approximately); zero means time.Now.
	Now time.Time
}

// Request is a parsed search: the store query plus what the engine must do
// with the result.
type Request struct {
	Query store.Query
	// Count is the page size; 0 asks for the total only (_count=0 or
	// _summary=count).
	Count int
	// Summary is _summary ("", "true", "text", "data", "count", "false").
	Summary string
	// Elements lists _elements (top-level element names), nil for all.
	Elements []string
	// Used holds the honoured parameters as given, for paging links.
	Used url.Values
	// Ignored lists unknown parameters ignored under lenient handling.
	Ignored []string
	// Criteria counts the search criteria (not result parameters).
	Criteria int
}

// resultParams are FHIR result or control parameters this server does not
// implement: asking for them is an error, never a silently different result.
var unsupportedParams = map[string]bool{
	"_contained": true, "_containedType": true, "_list": true, "_query": true, "_filter": true,
	"_score": true, "_graph": true,
	// phonetic needs a phonetic algorithm the definitions do not name.
	"phonetic": true,
}

// apiParams are handled by the HTTP layer (response format), not by search.
var apiParams = map[string]bool{"_format": true, "_pretty": true}

// Parse turns a FHIR search (URL parameters) for typ ("" for a system-level
// search, where _type selects the types) into a Request. Errors are
// *fhir.Error: EInvalid for malformed values and unknown modifiers (and
// unknown parameters under Strict), ENotSupported for parts of FHIR search
// this server does not implement.
func Parse(typ string, v url.Values, o Options) (*Request, error) {
	p := &parser{o: o, req: &Request{Used: url.Values{}, Count: DefaultCount}}
	if p.o.Now.IsZero() {
		p.o.Now = time.Now()
	}
	r := p.req
	if typ != "" {
		if !r4.IsResource(typ) {
			return nil, fhir.Errorf(fhir.ENotFound, "", "unknown resource type %q", trunc(typ))
		}
		r.Query.Types = []string{typ}
	} else {
		for _, val := range v["_type"] {
			for t := range strings.SplitSeq(val, ",") {
				t = strings.TrimSpace(t)
				if t == "" {
					continue
				}
				if !r4.IsResource(t) {
					return nil, fhir.Invalid("", "_type: unknown resource type %q", trunc(t))
				}
				if !slices.Contains(r.Query.Types, t) {
					r.Query.Types = append(r.Query.Types, t)
				}
			}
			r.Used.Add("_type", val)
		}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic errors and outcome issues
	var sorts, includes []string
	for _, full := range names {
		vals := v[full]
		name, mod, hasMod := strings.Cut(full, ":")
		if apiParams[full] || (name == "_type" && typ == "") {
			continue
		}
		if p.o.Conditional && isResultParam(name) {
			return nil, fhir.Invalid("", "parameter %q cannot be used in the criteria of a conditional interaction", trunc(full))
		}
		switch {
		case name == "_count" && !hasMod:
			n, err := strconv.Atoi(last(vals))
			if err != nil || n < 0 {
				return nil, fhir.Invalid("", "_count must be a non-negative integer, not %q", trunc(last(vals)))
			}
			r.Count = min(n, MaxCount)
			r.Used.Set("_count", strconv.Itoa(r.Count))
		case name == "_total" && !hasMod:
			switch t := last(vals); t {
			case "accurate", "estimate":
				r.Query.Total = true
				r.Used.Set("_total", t)
			case "none":
				r.Used.Set("_total", t)
			default:
				return nil, fhir.Invalid("", "_total must be none, estimate or accurate, not %q", trunc(t))
			}
		case name == "_summary" && !hasMod:
			switch s := last(vals); s {
			case "true", "text", "data", "false":
				r.Summary = s
			case "count":
				r.Summary = s
				r.Query.Total = true
			default:
				return nil, fhir.Invalid("", "_summary must be true, text, data, count or false, not %q", trunc(s))
			}
			r.Used.Set("_summary", last(vals))
		case name == "_elements" && !hasMod:
			for _, val := range vals {
				for e := range strings.SplitSeq(val, ",") {
					if e = strings.TrimSpace(e); e != "" {
						r.Elements = append(r.Elements, e)
					}
				}
				r.Used.Add("_elements", val)
			}
		case name == "_cursor" && !hasMod:
			r.Query.Cursor = last(vals)
		case name == "_sort" && !hasMod:
			for _, val := range vals {
				sorts = append(sorts, strings.Split(val, ",")...)
				r.Used.Add("_sort", val)
			}
		case name == "_include" || name == "_revinclude":
			if hasMod && mod != "iterate" && mod != "recurse" {
				return nil, fhir.Invalid("", "%s: unknown modifier :%s", name, trunc(mod))
			}
			for _, val := range vals {
				includes = append(includes, full+"="+val)
				r.Used.Add(full, val)
			}
		case unsupportedParams[name]:
			return nil, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q is not supported by this server", trunc(full))
		default:
			known, err := p.criterion(full, vals)
			if err != nil {
				return nil, err
			}
			if !known {
				if p.o.Strict || p.o.Conditional {
					return nil, fhir.Invalid("", "unknown search parameter %q", trunc(full))
				}
				r.Ignored = append(r.Ignored, full)
			}
		}
	}
	if p.o.Conditional && r.Criteria == 0 {
		return nil, fhir.Invalid("", "a conditional interaction needs at least one search criterion")
	}
	if r.Summary == "count" {
		r.Count = 0
	}
	if err := p.sort(sorts); err != nil {
		return nil, err
	}
	for _, inc := range includes {
		if err := p.include(inc); err != nil {
			return nil, err
		}
	}
	if err := expandUnions(&r.Query); err != nil {
		return nil, err
	}
	return r, nil
}

func isResultParam(name string) bool {
	switch name {
	case "_count", "_total", "_summary", "_elements", "_cursor", "_sort", "_include", "_revinclude":
		return true
	}
	return false
}

type parser struct {
	o   Options
	req *Request
}

// criterion parses one search parameter (all its occurrences: AND) into
// clauses; known is false for a parameter no type defines.
func (p *parser) criterion(full string, vals []string) (known bool, err error) {
	r := p.req
	var added bool
	for _, val := range vals {
		if val == "" { // FHIR search.html: a parameter with an empty value is ignored
			continue
		}
		clauses, types, ok, err := p.clauses(r.Query.Types, full, val)
		if err != nil {
			return true, err
		}
		if !ok {
			return false, nil
		}
		r.Query.Types = types
		r.Query.Clauses = append(r.Query.Clauses, clauses...)
		r.Used.Add(full, val)
		added = true
	}
	if added {
		r.Criteria++
	}
	return true, nil
}

// clauses parses "name[:modifier][.chain...]=value" over types and returns
// the clauses (more than one for :not with several values), the types
// narrowed to those that define the parameter, and ok false when the
// parameter is unknown on every type.
func (p *parser) clauses(types []string, full, val string) ([]store.Clause, []string, bool, error) {
	if strings.HasPrefix(full, "_has:") {
		c, err := p.has(types, full, val)
		if err != nil {
			return nil, nil, true, err
		}
		return []store.Clause{{c}}, types, true, nil
	}
	link, rest, chained := strings.Cut(full, ".")
	name, mod, _ := strings.Cut(link, ":")
	defs, narrowed := lookup(types, name)
	if len(defs) == 0 {
		if others, _ := lookup(nil, name); chained || len(others) > 0 || specialParam(name) {
			return nil, nil, true, fhir.Invalid("", "search parameter %q is not defined for %s", trunc(name), typesText(types))
		}
		return nil, nil, false, nil
	}
	kind := defs[0].Type
	for _, d := range defs[1:] {
		if d.Type != kind {
			return nil, nil, true, fhir.Invalid("", "search parameter %q has different types on %s; search one type at a time", trunc(name), typesText(narrowed))
		}
	}
	if chained {
		if kind != "reference" {
			return nil, nil, true, fhir.Invalid("", "search parameter %q is not a reference and cannot be chained", trunc(name))
		}
		c, err := p.chain(defs, name, mod, rest, val)
		if err != nil {
			return nil, nil, true, err
		}
		return []store.Clause{{c}}, narrowed, true, nil
	}
	cs, err := p.values(defs[0], name, mod, val)
	return cs, narrowed, true, err
}

func specialParam(name string) bool {
	switch name {
	case "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content", "_has":
		return true
	}
	return false
}

// lookup returns the definitions of name on types (every type when types
// is empty) and the types that define it.
func lookup(types []string, name string) ([]*r4.SearchParam, []string) {
	all := types
	if len(all) == 0 {
		all = r4.ResourceTypes()
	}
	var defs []*r4.SearchParam
	var narrowed []string
	for _, t := range all {
		if sp := r4.SearchParams(t)[name]; sp != nil {
			defs = append(defs, sp)
			narrowed = append(narrowed, t)
		}
	}
	if len(types) == 0 && len(narrowed) == len(all) {
		narrowed = nil // defined everywhere: stay a search over every type
	}
	return defs, narrowed
}

func typesText(types []string) string {
	if len(types) == 0 {
		return "any type"
	}
	return strings.Join(types, ", ")
}

// chain parses subject:Patient.name=x (and deeper chains) into a CondChain.
func (p *parser) chain(defs []*r4.SearchParam, name, mod, rest, val string) (store.Cond, error) {
	var targets []string
	if mod != "" {
		if !r4.IsResource(mod) {
			return store.Cond{}, fhir.Invalid("", "search parameter %q: :%s is not a resource type", trunc(name), trunc(mod))
		}
		targets = []string{mod}
	} else {
		for _, d := range defs {
			for _, t := range refTargets(d) {
				if !slices.Contains(targets, t) {
					targets = append(targets, t)
				}
			}
		}
	}
	// Keep only the targets that define the next link's parameter: a
	// reference to another type cannot satisfy it.
	nextName, _, _ := strings.Cut(rest, ".")
	nextName, _, _ = strings.Cut(nextName, ":")
	var keep []string
	for _, t := range targets {
		if r4.SearchParams(t)[nextName] != nil || strings.HasPrefix(rest, "_has:") {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		return store.Cond{}, fhir.Invalid("", "chained search %q: no target of %q defines %q", trunc(name+"."+rest), trunc(name), trunc(nextName))
	}
	clauses, types, ok, err := p.clauses(keep, rest, val)
	if err != nil {
		return store.Cond{}, err
	}
	if !ok {
		return store.Cond{}, fhir.Invalid("", "chained search: unknown parameter %q", trunc(rest))
	}
	return store.Cond{Kind: store.CondChain, Param: name, Sub: &store.Query{Types: types, Clauses: clauses}}, nil
}

// refTargets lists a reference parameter's target types (every type when
// the definition says Resource or nothing).
func refTargets(d *r4.SearchParam) []string {
	var out []string
	for _, t := range d.Targets {
		if r4.IsResource(t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return r4.ResourceTypes()
	}
	return out
}

// has parses _has:Type:param:rest=value (rest may be another _has).
func (p *parser) has(types []string, full, val string) (store.Cond, error) {
	parts := strings.SplitN(full, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return store.Cond{}, fhir.Invalid("", "%q: _has takes the form _has:Type:reference:parameter", trunc(full))
	}
	src, ref, rest := parts[1], parts[2], parts[3]
	if !r4.IsResource(src) {
		return store.Cond{}, fhir.Invalid("", "%q: unknown resource type %q", trunc(full), trunc(src))
	}
	sp := r4.SearchParams(src)[ref]
	if sp == nil || sp.Type != "reference" {
		return store.Cond{}, fhir.Invalid("", "%q: %s has no reference parameter %q", trunc(full), src, trunc(ref))
	}
	clauses, _, ok, err := p.clauses([]string{src}, rest, val)
	if err != nil {
		return store.Cond{}, err
	}
	if !ok {
		return store.Cond{}, fhir.Invalid("", "%q: unknown parameter %q on %s", trunc(full), trunc(rest), src)
	}
	return store.Cond{Kind: store.CondHas, Param: ref, Sub: &store.Query{Types: []string{src}, Clauses: clauses}}, nil
}

// values parses the value of a non-chained parameter with its modifier.
func (p *parser) values(sp *r4.SearchParam, name, mod, val string) ([]store.Clause, error) {
	kind := sp.Type
	bad := func() ([]store.Clause, error) {
		return nil, fhir.Invalid("", "search parameter %q (%s): unknown modifier :%s", trunc(name), kind, trunc(mod))
	}
	unsupported := func() ([]store.Clause, error) {
		return nil, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q: modifier :%s is not supported by this server", trunc(name), trunc(mod))
	}
	if mod == "missing" {
		var ck store.CondKind
		switch {
		case name == "_id" || name == "_lastUpdated":
			return nil, fhir.Invalid("", "%s cannot be missing", name)
		case name == "_text" || name == "_content" || kind == "special":
			return unsupported()
		default:
			ck = kindOf(kind)
		}
		m := store.MissingFalse
		switch val {
		case "true":
			m = store.MissingTrue
		case "false":
		default:
			return nil, fhir.Invalid("", "%s:missing must be true or false, not %q", trunc(name), trunc(val))
		}
		return []store.Clause{{{Kind: ck, Param: name, Missing: m}}}, nil
	}
	alts := splitEscaped(val, ',')
	var c store.Clause
	switch {
	case name == "_id":
		if mod != "" {
			return bad()
		}
		for _, a := range alts {
			c = append(c, store.Cond{Kind: store.CondID, Code: unescape(a)})
		}
		return []store.Clause{c}, nil
	case name == "_lastUpdated":
		if mod != "" {
			return bad()
		}
		for _, a := range alts {
			cond, err := p.date(name, a)
			if err != nil {
				return nil, err
			}
			cond.Kind = store.CondLastUpdated
			c = append(c, cond)
		}
		return []store.Clause{c}, nil
	case name == "_text" || name == "_content":
		if mod != "" {
			return bad()
		}
		for _, a := range alts {
			ts := terms(Fold(unescape(a)))
			if len(ts) == 0 {
				return nil, fhir.Invalid("", "%s: %q has no words to search for", name, trunc(a))
			}
			c = append(c, store.Cond{Kind: store.CondText, Param: name, Value: strings.Join(ts, " ")})
		}
		return []store.Clause{c}, nil
	}
	switch kind {
	case "string":
		m := store.MatchPrefix
		switch mod {
		case "":
		case "exact":
			m = store.MatchExact
		case "contains":
			m = store.MatchContains
		default:
			return bad()
		}
		for _, a := range alts {
			v := unescape(a)
			if m != store.MatchExact {
				v = Fold(v)
			}
			c = append(c, store.Cond{Kind: store.CondString, Param: name, Match: m, Value: v})
		}
	case "token":
		switch mod {
		case "", "not", "text", "of-type":
		case "in", "not-in", "below", "above":
			return unsupported()
		default:
			return bad()
		}
		var out []store.Clause
		for _, a := range alts {
			cond, err := tokenCond(name, mod, a)
			if err != nil {
				return nil, err
			}
			if mod == "not" {
				// code:not=a,b keeps resources with neither: one clause per value.
				out = append(out, store.Clause{cond})
				continue
			}
			c = append(c, cond)
		}
		if mod == "not" {
			return out, nil
		}
	case "reference":
		for _, a := range alts {
			if mod == "identifier" {
				// A token: its own parser handles \| inside system and value.
				cond, err := tokenCond(name, "", a)
				if err != nil {
					return nil, err
				}
				cond.Param = name + ":identifier"
				c = append(c, cond)
				continue
			}
			cond, err := p.reference(sp, name, mod, unescape(a))
			if err != nil {
				return nil, err
			}
			c = append(c, cond)
		}
	case "uri":
		m := store.MatchExact
		switch mod {
		case "":
		case "below":
			m = store.MatchPrefix
		case "above":
			m = store.MatchAbove
		default:
			return bad()
		}
		for _, a := range alts {
			c = append(c, store.Cond{Kind: store.CondURI, Param: name, Match: m, Value: unescape(a)})
		}
	case "date", "number", "quantity":
		if mod != "" {
			return bad()
		}
		for _, a := range alts {
			cond, err := p.ordered(kind, name, a)
			if err != nil {
				return nil, err
			}
			c = append(c, cond)
		}
	case "composite":
		if mod != "" {
			return bad()
		}
		for _, a := range alts {
			cond, err := p.composite(sp, name, a)
			if err != nil {
				return nil, err
			}
			c = append(c, cond)
		}
	default:
		return nil, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q (%s) is not supported by this server", trunc(name), kind)
	}
	return []store.Clause{c}, nil
}

func kindOf(kind string) store.CondKind {
	switch kind {
	case "string":
		return store.CondString
	case "token":
		return store.CondToken
	case "date":
		return store.CondDate
	case "number":
		return store.CondNumber
	case "quantity":
		return store.CondQuantity
	case "reference":
		return store.CondReference
	case "uri":
		return store.CondURI
	case "composite":
		return store.CondComposite
	}
	return 0
}

// tokenCond parses one token value (system|code forms) with modifier.
func tokenCond(name, mod, a string) (store.Cond, error) {
	cond := store.Cond{Kind: store.CondToken, Param: name}
	switch mod {
	case "text":
		cond.Text, cond.Code, cond.AnySystem = true, Fold(unescape(a)), true
		return cond, nil
	case "of-type":
		parts := splitEscaped(a, '|')
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return cond, fhir.Invalid("", "%s:of-type takes system|code|value, not %q", trunc(name), trunc(a))
		}
		cond.Param = name + ":of-type"
		cond.System, cond.Code = unescape(parts[0]), unescape(parts[1])+"|"+unescape(parts[2])
		return cond, nil
	case "not":
		cond.Not = true
	}
	parts := splitEscaped(a, '|')
	switch len(parts) {
	case 1:
		cond.Code, cond.AnySystem = unescape(parts[0]), true
	case 2:
		cond.System, cond.Code = unescape(parts[0]), unescape(parts[1])
		if cond.System == "" && cond.Code == "" {
			return cond, fhir.Invalid("", "search parameter %q: %q is not a token", trunc(name), trunc(a))
		}
		if cond.Code == "" {
			cond.AnyCode = true
		}
	default:
		return cond, fhir.Invalid("", "search parameter %q: %q is not a token (system|code)", trunc(name), trunc(a))
	}
	if cond.Code == "" && cond.AnySystem {
		return cond, fhir.Invalid("", "search parameter %q has an empty value", trunc(name))
	}
	return cond, nil
}

// reference parses a reference value: Type/id, id (with :Type), an
// absolute URL, or (with :identifier) a token.
func (p *parser) reference(sp *r4.SearchParam, name, mod, a string) (store.Cond, error) {
	if mod != "" && !r4.IsResource(mod) {
		if mod == "above" || mod == "below" {
			return store.Cond{}, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q: modifier :%s is not supported by this server", trunc(name), mod)
		}
		return store.Cond{}, fhir.Invalid("", "search parameter %q (reference): unknown modifier :%s", trunc(name), trunc(mod))
	}
	cond := store.Cond{Kind: store.CondReference, Param: name}
	if a == "" {
		return cond, fhir.Invalid("", "search parameter %q has an empty value", trunc(name))
	}
	ix := Indexer{Base: p.o.Base}
	if typ, id, ok := ix.splitRef(a); ok {
		if mod != "" && mod != typ {
			return cond, fhir.Invalid("", "search parameter %q: %q is not a %s reference", trunc(name), trunc(a), mod)
		}
		cond.RefType, cond.RefID = typ, id
		return cond, nil
	}
	if strings.Contains(a, ":") || strings.Contains(a, "/") {
		cond.URL = a
		return cond, nil
	}
	if !fhir.ValidID(a) {
		return cond, fhir.Invalid("", "search parameter %q: %q is not a reference", trunc(name), trunc(a))
	}
	cond.RefType, cond.RefID = mod, a
	return cond, nil
}

var prefixes = map[string]store.Prefix{
	"eq": store.PrefixEQ, "ne": store.PrefixNE, "gt": store.PrefixGT, "lt": store.PrefixLT,
	"ge": store.PrefixGE, "le": store.PrefixLE, "sa": store.PrefixSA, "eb": store.PrefixEB,
	"ap": store.PrefixAP,
}

func splitPrefix(a string) (store.Prefix, string) {
	if len(a) >= 2 {
		if pr, ok := prefixes[a[:2]]; ok {
			return pr, a[2:]
		}
	}
	return store.PrefixEQ, a
}

func (p *parser) ordered(kind, name, a string) (store.Cond, error) {
	switch kind {
	case "date":
		return p.date(name, a)
	case "number":
		return p.number(name, a)
	}
	return p.quantity(name, a)
}

// date parses [prefix]date into a CondDate over the value's precision range.
func (p *parser) date(name, a string) (store.Cond, error) {
	pr, v := splitPrefix(unescape(a))
	if len(v) > 19 && v[len(v)-6] == ' ' {
		// A "+" of a time zone that the client did not percent-encode
		// arrives as a space; nothing else can be meant.
		v = v[:len(v)-6] + "+" + v[len(v)-5:]
	}
	lo, hi, ok := dateRange(v)
	if !ok {
		return store.Cond{}, fhir.Invalid("", "search parameter %q: %q is not a date", trunc(name), trunc(a))
	}
	if pr == store.PrefixAP {
		// ap: FHIR leaves the width to the server; 10% of the distance
		// from now, at least a day (search.html 3.1.1.4.2).
		now := p.o.Now.UnixMilli()
		gap := max(absInt(now-lo)/10, 86_400_000)
		lo, hi = lo-gap, hi+gap
	}
	return store.Cond{Kind: store.CondDate, Param: name, Prefix: pr, Lo: lo, Hi: hi}, nil
}

func absInt(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// numberRange is the implicit range of a number as written: "100" is
// [99.5, 100.5], "100.0" [99.95, 100.05], "1e2" [50, 150] (R4 search.html
// 3.1.1.4.1). For prefixes other than eq, ne and ap the exact value is
// compared (gt100 means more than 100).
func numberRange(pr store.Prefix, s string) (lo, hi float64, ok bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || strings.ContainsAny(s, "xXpP_") {
		return 0, 0, false
	}
	switch pr {
	case store.PrefixEQ, store.PrefixNE:
		mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
		e := 0
		if exp != "" {
			e, _ = strconv.Atoi(exp)
		}
		decimals := 0
		if _, frac, ok := strings.Cut(mant, "."); ok {
			decimals = len(frac)
		}
		half := 0.5 * math.Pow(10, float64(e-decimals))
		return round15(f - half), round15(f + half), true
	case store.PrefixAP:
		d := math.Abs(f) / 10
		return f - d, f + d, true
	}
	return f, f, true
}

// round15 drops the binary noise of a decimal computation (0.8+0.05 is
// 0.8500000000000001), so the bounds are the decimals the client meant.
func round15(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 15, 64), 64)
	return r
}

func (p *parser) number(name, a string) (store.Cond, error) {
	pr, v := splitPrefix(unescape(a))
	lo, hi, ok := numberRange(pr, v)
	if !ok {
		return store.Cond{}, fhir.Invalid("", "search parameter %q: %q is not a number", trunc(name), trunc(a))
	}
	return store.Cond{Kind: store.CondNumber, Param: name, Prefix: pr, NumLo: lo, NumHi: hi}, nil
}

// quantity parses [prefix]number[|system|code] (or number||code).
func (p *parser) quantity(name, a string) (store.Cond, error) {
	parts := splitEscaped(a, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return store.Cond{}, fhir.Invalid("", "search parameter %q: %q is not a quantity (number|system|code)", trunc(name), trunc(a))
	}
	pr, v := splitPrefix(unescape(parts[0]))
	lo, hi, ok := numberRange(pr, v)
	if !ok {
		return store.Cond{}, fhir.Invalid("", "search parameter %q: %q is not a quantity", trunc(name), trunc(a))
	}
	c := store.Cond{Kind: store.CondQuantity, Param: name, Prefix: pr, NumLo: lo, NumHi: hi, AnySystem: true, AnyCode: true}
	if len(parts) == 3 {
		system, code := unescape(parts[1]), unescape(parts[2])
		switch {
		case code == "" && system == "":
		case code == "":
			return c, fhir.Invalid("", "search parameter %q: %q gives a unit system without a code", trunc(name), trunc(a))
		case system == "":
			c.Code, c.AnyCode = code, false // ||code: the code or the unit, in any system
		default:
			c.System, c.Code, c.AnySystem, c.AnyCode = system, code, false, false
		}
	}
	return c, nil
}

// composite parses a$b[$c] against the components of sp.
func (p *parser) composite(sp *r4.SearchParam, name, a string) (store.Cond, error) {
	parts := splitEscaped(a, '$')
	if len(parts) != len(sp.Components) {
		return store.Cond{}, fhir.Invalid("", "search parameter %q takes %d values separated by $, not %q", trunc(name), len(sp.Components), trunc(a))
	}
	cond := store.Cond{Kind: store.CondComposite, Param: name}
	for i, comp := range sp.Components {
		def := definitionByURL(comp.Definition)
		if def == nil {
			return cond, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q: component %d is not supported", trunc(name), i)
		}
		clauses, err := p.values(def, def.Name, "", strings.ReplaceAll(parts[i], ",", `\,`))
		if err != nil {
			return cond, err
		}
		cond.Parts = append(cond.Parts, clauses[0][0])
	}
	return cond, nil
}

var defsByURL map[string]*r4.SearchParam

func definitionByURL(u string) *r4.SearchParam {
	compileOnce.Do(compileAll)
	return defsByURL[u]
}

// sort parses _sort keys.
func (p *parser) sort(keys []string) error {
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		desc := strings.HasPrefix(k, "-")
		k = strings.TrimPrefix(k, "-")
		key := store.SortKey{Param: k, Desc: desc}
		switch k {
		case "_id":
			key.Kind = store.CondID
		case "_lastUpdated":
			key.Kind = store.CondLastUpdated
		default:
			defs, _ := lookup(p.req.Query.Types, k)
			if len(defs) == 0 {
				return fhir.Invalid("", "_sort: unknown search parameter %q", trunc(k))
			}
			key.Kind = kindOf(defs[0].Type)
			for _, d := range defs {
				if kindOf(d.Type) != key.Kind {
					return fhir.Invalid("", "_sort: %q has different types on the searched types", trunc(k))
				}
			}
			if key.Kind == 0 || key.Kind == store.CondComposite {
				return fhir.Errorf(fhir.ENotSupported, "", "_sort by %q (%s) is not supported", trunc(k), defs[0].Type)
			}
		}
		p.req.Query.Sort = append(p.req.Query.Sort, key)
	}
	return nil
}

// include parses "_include[:iterate]=Type:param[:target]" (or "*").
func (p *parser) include(spec string) error {
	full, val, _ := strings.Cut(spec, "=")
	name, mod, _ := strings.Cut(full, ":")
	inc := store.Include{Iterate: mod == "iterate" || mod == "recurse"}
	if val == "*" {
		inc.SourceType, inc.Param = "*", "*"
	} else {
		parts := strings.Split(val, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fhir.Invalid("", "%s: %q is not Type:parameter[:targetType]", name, trunc(val))
		}
		src, prm := parts[0], parts[1]
		if src != "*" && !r4.IsResource(src) {
			return fhir.Invalid("", "%s: unknown resource type %q", name, trunc(src))
		}
		if prm != "*" && src != "*" {
			sp := r4.SearchParams(src)[prm]
			if sp == nil || sp.Type != "reference" {
				return fhir.Invalid("", "%s: %s has no reference parameter %q", name, src, trunc(prm))
			}
		}
		inc.SourceType, inc.Param = src, prm
		if len(parts) == 3 {
			if !r4.IsResource(parts[2]) {
				return fhir.Invalid("", "%s: unknown target type %q", name, trunc(parts[2]))
			}
			inc.TargetType = parts[2]
		}
	}
	if name == "_include" {
		p.req.Query.Include = append(p.req.Query.Include, inc)
	} else {
		p.req.Query.RevInclude = append(p.req.Query.RevInclude, inc)
	}
	return nil
}

func last(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[len(vals)-1]
}

// splitEscaped splits s at each sep not escaped by a backslash, keeping the
// escapes for unescape.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescape removes FHIR's search escapes (\, \| \$ \\).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// trunc shortens client text quoted in error messages.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// DateCond parses a date value (with an optional prefix) into a CondDate on
// param, for callers outside URL search ($everything's start and end).
func DateCond(param, value string) (store.Cond, error) {
	p := &parser{o: Options{Now: time.Now()}}
	return p.date(param, value)
}
