package search

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/fhirpath"
	"github.com/sharedcare/sharedcare/internal/store"
)

// param is one search parameter of one resource type, compiled.
type param struct {
	name  string
	kind  string // number, date, string, token, reference, composite, quantity, uri, special
	expr  *fhirpath.Expression
	comps []component
}

// component is one part of a composite parameter.
type component struct {
	kind string
	expr *fhirpath.Expression
}

var (
	compileOnce sync.Once
	compiled    map[string][]*param            // resource type -> its indexed parameters
	unions      map[string]map[string][]string // resource type -> union parameter -> members (union.go)
	compileErr  error
)

// params returns the compiled parameters of typ. Each R4 expression is
// compiled once per process, restricted to the union branches that can
// apply to typ ("Account.identifier | Patient.identifier" becomes
// "Patient.identifier" for Patient): evaluation then never walks the
// branches of other types (measured: about half the evaluation time for the
// shared parameters such as identifier, patient and date).
func params(typ string) []*param {
	compileOnce.Do(compileAll)
	return compiled[typ]
}

// CompileError reports an R4 search parameter expression that does not
// compile (nil when all do); such a parameter is not indexed.
func CompileError() error {
	compileOnce.Do(compileAll)
	return compileErr
}

func compileAll() {
	compiled = map[string][]*param{}
	byURL := map[string]*r4.SearchParam{}
	for _, t := range r4.ResourceTypes() {
		for _, sp := range r4.SearchParams(t) {
			byURL[sp.URL] = sp
		}
	}
	defsByURL = byURL
	cache := map[string]*fhirpath.Expression{}
	compile := func(src string) *fhirpath.Expression {
		if e, ok := cache[src]; ok {
			return e
		}
		e, err := fhirpath.Compile(src)
		if err != nil {
			if compileErr == nil {
				compileErr = fhir.Internal(err)
			}
			cache[src] = nil
			return nil
		}
		cache[src] = e
		return e
	}
	for _, t := range r4.ResourceTypes() {
		for _, name := range sortedKeys(r4.SearchParams(t)) {
			sp := r4.SearchParams(t)[name]
			if sp.Expression == "" || name == "_id" || name == "_lastUpdated" {
				continue // special parameters (_text, _content, near) and those served by the resources table
			}
			src := restrictExpr(sp.Expression, t)
			if src == "" {
				continue
			}
			p := &param{name: name, kind: sp.Type, expr: compile(src)}
			if p.expr == nil {
				continue
			}
			ok := true
			for _, c := range sp.Components {
				def := byURL[c.Definition]
				e := compile(c.Expression)
				if def == nil || e == nil {
					ok = false
					break
				}
				p.comps = append(p.comps, component{kind: def.Type, expr: e})
			}
			if ok {
				compiled[t] = append(compiled[t], p)
			}
		}
	}
	findUnions()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slicesSort(keys)
	return keys
}

// restrictExpr keeps the top-level union branches of expr that can apply
// to typ: those whose leading identifier is typ, an abstract base
// (Resource, DomainResource) or not a resource type at all.
func restrictExpr(expr, typ string) string {
	parts := splitUnion(expr)
	kept := parts[:0]
	for _, p := range parts {
		head := strings.TrimLeft(strings.TrimSpace(p), "( ")
		end := strings.IndexFunc(head, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if end >= 0 {
			head = head[:end]
		}
		if head != typ && head != "Resource" && head != "DomainResource" && r4.IsResource(head) {
			continue
		}
		kept = append(kept, strings.TrimSpace(p))
	}
	return strings.Join(kept, " | ")
}

// splitUnion splits expr at the "|" operators outside parentheses and
// string literals.
func splitUnion(expr string) []string {
	var parts []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inStr = false
			}
		case c == '\'':
			inStr = true
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, expr[start:i])
			start = i + 1
		}
	}
	return append(parts, expr[start:])
}

// Indexer extracts the search index rows of resources. It is safe for
// concurrent use.
type Indexer struct {
	// Base is the server's absolute FHIR base ("http://host/fhir"): an
	// absolute reference under it is indexed as the relative Type/id.
	Base string
	// OnError, when set, hears of each parameter whose expression fails
	// on a resource (that parameter then has no rows for it); tests use it
	// to name any R4 expression that does not evaluate over real data.
	OnError func(typ, param string, err error)
}

// Index returns every index row of resource r of type typ: one set of rows
// per R4 search parameter of the type (driven by its FHIRPath expression),
// plus _text, _content and the Patient compartments r belongs to.
// Expressions that fail on r (none do over the Synthea set) leave their
// parameter without rows.
func (ix *Indexer) Index(typ string, r fhir.Object) store.Index {
	var idx store.Index
	x := extractor{ix: ix, idx: &idx}
	for _, p := range params(typ) {
		vals, err := p.expr.Evaluate(r)
		if err != nil && ix.OnError != nil {
			ix.OnError(typ, p.name, err)
		}
		if err != nil || len(vals) == 0 {
			continue
		}
		if p.kind == "composite" {
			x.composite(p, r, vals)
			continue
		}
		for _, v := range vals {
			x.value(p.name, p.kind, v.Type(), v.JSON())
		}
	}
	x.text(r)
	x.compartments(typ, r)
	return idx
}

// IndexOnly is Index restricted to the named search parameters, plus the
// Patient compartments (computed from their own parameters alone), for a
// caller that wants a few facts of a resource (whose record it is in, its
// _source and _security) rather than its whole index: evaluating every
// parameter of a resource costs tens of microseconds, these few a
// fraction of it. Its rows for those parameters and its compartments are
// exactly Index's.
func (ix *Indexer) IndexOnly(typ string, r fhir.Object, names ...string) store.Index {
	var idx store.Index
	x := extractor{ix: ix, idx: &idx}
	cp := r4.PatientCompartment(typ)
	for _, p := range params(typ) {
		if !slicesContains(names, p.name) && !slicesContains(cp, p.name) {
			continue
		}
		vals, err := p.expr.Evaluate(r)
		if err != nil && ix.OnError != nil {
			ix.OnError(typ, p.name, err)
		}
		if err != nil || len(vals) == 0 {
			continue
		}
		if p.kind == "composite" {
			x.composite(p, r, vals)
			continue
		}
		for _, v := range vals {
			x.value(p.name, p.kind, v.Type(), v.JSON())
		}
	}
	x.compartments(typ, r)
	if !slicesContains(names, "_text") && !slicesContains(names, "_content") {
		return idx
	}
	x.text(r)
	return idx
}

type extractor struct {
	ix  *Indexer
	idx *store.Index
}

// value indexes one node of FHIR type ftype as a parameter of kind.
func (x *extractor) value(name, kind, ftype string, v any) {
	if v == nil {
		return
	}
	idx := x.idx
	switch kind {
	case "string":
		forStrings(ftype, v, func(s string) {
			idx.Strings = append(idx.Strings, store.String{Param: name, Norm: Fold(s), Exact: s})
		})
	case "token":
		x.token(name, ftype, v)
	case "reference":
		x.reference(name, ftype, v)
	case "date":
		forDates(ftype, v, func(lo, hi int64) {
			idx.Dates = append(idx.Dates, store.Date{Param: name, Lo: lo, Hi: hi})
		})
	case "number":
		if f, ok := number(v); ok {
			idx.Numbers = append(idx.Numbers, store.Number{Param: name, Lo: f, Hi: f})
		}
	case "quantity":
		forQuantities(ftype, v, func(q quantityRow) {
			idx.Quantities = append(idx.Quantities, store.Quantity{Param: name, System: q.system, Code: q.code, Lo: q.lo, Hi: q.hi})
		})
	case "uri":
		if s, ok := v.(string); ok {
			idx.URIs = append(idx.URIs, store.URI{Param: name, Value: s})
		}
	}
}

// forStrings calls f for every string a string parameter indexes in v:
// each part of a HumanName or Address (R4 search.html: "name" matches any
// part), or the value of a primitive.
func forStrings(ftype string, v any, f func(string)) {
	switch o := v.(type) {
	case string:
		if o != "" {
			f(o)
		}
	case fhir.Object:
		var keys []string
		switch ftype {
		case "HumanName":
			keys = []string{"text", "family", "given", "prefix", "suffix"}
		case "Address":
			keys = []string{"text", "line", "city", "district", "state", "postalCode", "country"}
		default:
			return
		}
		for _, k := range keys {
			switch s := o[k].(type) {
			case string:
				if s != "" {
					f(s)
				}
			case []any:
				for _, it := range s {
					if s, ok := it.(string); ok && s != "" {
						f(s)
					}
				}
			}
		}
	}
}

func str(o fhir.Object, k string) string {
	s, _ := o[k].(string)
	return s
}

// token indexes a Coding, CodeableConcept, Identifier, ContactPoint or a
// primitive (code, boolean, string, id, uri).
func (x *extractor) token(name, ftype string, v any) {
	idx := x.idx
	switch o := v.(type) {
	case string:
		if o != "" {
			idx.Tokens = append(idx.Tokens, store.Token{Param: name, Code: o})
		}
	case bool:
		idx.Tokens = append(idx.Tokens, store.Token{Param: name, Code: strconv.FormatBool(o)})
	case fhir.Object:
		switch ftype {
		case "CodeableConcept":
			text := Fold(str(o, "text"))
			codings, _ := o["coding"].([]any)
			for _, c := range codings {
				if c, ok := c.(fhir.Object); ok {
					t := text
					if d := str(c, "display"); d != "" && t == "" {
						t = Fold(d)
					}
					x.coding(name, c, t)
				}
			}
			if len(codings) == 0 && text != "" {
				idx.Tokens = append(idx.Tokens, store.Token{Param: name, Text: text})
			}
		case "Coding":
			x.coding(name, o, Fold(str(o, "display")))
		case "Identifier":
			value, system := str(o, "value"), str(o, "system")
			if value == "" && system == "" {
				return
			}
			var text string
			if t, ok := o["type"].(fhir.Object); ok {
				text = Fold(str(t, "text"))
				codings, _ := t["coding"].([]any)
				for _, c := range codings {
					if c, ok := c.(fhir.Object); ok && str(c, "code") != "" && value != "" {
						idx.Tokens = append(idx.Tokens, store.Token{Param: name + ":of-type", System: str(c, "system"), Code: str(c, "code") + "|" + value})
					}
				}
			}
			idx.Tokens = append(idx.Tokens, store.Token{Param: name, System: system, Code: value, Text: text})
		case "ContactPoint":
			if value := str(o, "value"); value != "" {
				idx.Tokens = append(idx.Tokens, store.Token{Param: name, System: str(o, "system"), Code: value})
			}
		}
	}
}

func (x *extractor) coding(name string, c fhir.Object, text string) {
	code, system := str(c, "code"), str(c, "system")
	if code == "" && system == "" && text == "" {
		return
	}
	x.idx.Tokens = append(x.idx.Tokens, store.Token{Param: name, System: system, Code: code, Text: text})
}

// reference indexes a Reference (and its identifier, for :identifier), or
// a canonical/uri naming a resource.
func (x *extractor) reference(name, ftype string, v any) {
	idx := x.idx
	var ref string
	switch o := v.(type) {
	case string:
		ref = o
	case fhir.Object:
		ref = str(o, "reference")
		if id, ok := o["identifier"].(fhir.Object); ok {
			if value := str(id, "value"); value != "" {
				idx.Tokens = append(idx.Tokens, store.Token{Param: name + ":identifier", System: str(id, "system"), Code: value})
			}
		}
	}
	if ref == "" || ref[0] == '#' {
		return // contained resources are not separately searchable
	}
	typ, id, ok := x.ix.splitRef(ref)
	if ok {
		idx.References = append(idx.References, store.Reference{Param: name, Type: typ, ID: id})
		return
	}
	idx.References = append(idx.References, store.Reference{Param: name, URL: ref})
	if base, _, ok := strings.Cut(ref, "|"); ok && ftype == "canonical" {
		idx.References = append(idx.References, store.Reference{Param: name, URL: base})
	}
}

// splitRef splits a relative reference (Type/id, Type/id/_history/n) or an
// absolute one under the server's base into type and id.
func (ix *Indexer) splitRef(ref string) (typ, id string, ok bool) {
	if strings.Contains(ref, ":") {
		if ix.Base == "" || !strings.HasPrefix(ref, ix.Base+"/") {
			return "", "", false
		}
		ref = ref[len(ix.Base)+1:]
	}
	return SplitRelative(ref)
}

// SplitRelative splits "Type/id" or "Type/id/_history/n" into type and id.
func SplitRelative(ref string) (typ, id string, ok bool) {
	typ, rest, ok := strings.Cut(ref, "/")
	if !ok || !r4.IsResource(typ) {
		return "", "", false
	}
	id, hist, _ := strings.Cut(rest, "/")
	if hist != "" && !strings.HasPrefix(hist, "_history/") {
		return "", "", false
	}
	if !fhir.ValidID(id) {
		return "", "", false
	}
	return typ, id, true
}

// forDates calls f with the range of each date-like value in v.
func forDates(ftype string, v any, f func(lo, hi int64)) {
	switch o := v.(type) {
	case string:
		if lo, hi, ok := dateRange(o); ok {
			f(lo, hi)
		}
	case fhir.Object:
		switch ftype {
		case "Period":
			lo, hi := int64(minDate), int64(maxDate)
			if s := str(o, "start"); s != "" {
				l, _, ok := dateRange(s)
				if !ok {
					return
				}
				lo = l
			}
			if s := str(o, "end"); s != "" {
				_, h, ok := dateRange(s)
				if !ok {
					return
				}
				hi = h
			}
			if lo == minDate && hi == maxDate {
				return
			}
			f(lo, hi)
		case "Timing":
			events, _ := o["event"].([]any)
			for _, e := range events {
				if s, ok := e.(string); ok {
					if lo, hi, ok := dateRange(s); ok {
						f(lo, hi)
					}
				}
			}
			if rep, ok := o["repeat"].(fhir.Object); ok {
				if bp, ok := rep["boundsPeriod"].(fhir.Object); ok {
					forDates("Period", bp, f)
				}
			}
		}
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	case fhir.Object: // a Quantity used as a number
		return number(n["value"])
	}
	return 0, false
}

type quantityRow struct {
	system, code string
	lo, hi       float64
}

// forQuantities calls f for a Quantity (and its kin), Money or Range.
func forQuantities(ftype string, v any, f func(quantityRow)) {
	o, ok := v.(fhir.Object)
	if !ok {
		if n, ok := number(v); ok {
			f(quantityRow{lo: n, hi: n})
		}
		return
	}
	switch ftype {
	case "Range":
		lo, hi := math.Inf(-1), math.Inf(1)
		var q fhir.Object
		if l, ok := o["low"].(fhir.Object); ok {
			if n, ok := number(l["value"]); ok {
				lo, q = n, l
			}
		}
		if h, ok := o["high"].(fhir.Object); ok {
			if n, ok := number(h["value"]); ok {
				hi = n
				if q == nil {
					q = h
				}
			}
		}
		if q == nil {
			return
		}
		units(q, func(system, code string) { f(quantityRow{system, code, lo, hi}) })
	case "Money":
		if n, ok := number(o["value"]); ok {
			f(quantityRow{"urn:iso:std:iso:4217", str(o, "currency"), n, n})
		}
	default:
		n, ok := number(o["value"])
		if !ok {
			return
		}
		units(o, func(system, code string) { f(quantityRow{system, code, n, n}) })
	}
}

// units calls f with the (system, code) pairs a quantity is searchable by:
// its coded unit and, where the human-readable unit differs, that unit
// without a system (R4 search.html: "|mg" matches the code or the unit).
func units(q fhir.Object, f func(system, code string)) {
	system, code, unit := str(q, "system"), str(q, "code"), str(q, "unit")
	if code == "" && unit == "" {
		f("", "")
		return
	}
	if code != "" {
		f(system, code)
	}
	if unit != "" && unit != code {
		f("", unit)
	}
}

// text indexes _text (the narrative, tags stripped) and _content (every
// string value in the resource).
func (x *extractor) text(r fhir.Object) {
	if t, ok := r["text"].(fhir.Object); ok {
		if div := str(t, "div"); div != "" {
			if s := Fold(stripTags(div)); strings.TrimSpace(s) != "" {
				x.idx.Texts = append(x.idx.Texts, store.Text{Param: "_text", Value: s})
			}
		}
	}
	var b strings.Builder
	collectStrings(r, &b)
	if b.Len() > 0 {
		x.idx.Texts = append(x.idx.Texts, store.Text{Param: "_content", Value: Fold(b.String())})
	}
}

// contentSkip are members whose strings are not content a person would
// search for: the narrative (served by _text), references and identifiers
// of the resource itself.
var contentSkip = map[string]bool{"div": true, "reference": true, "id": true, "fullUrl": true, "resourceType": true, "url": true, "system": true}

func collectStrings(v any, b *strings.Builder) {
	switch o := v.(type) {
	case fhir.Object:
		for k, c := range o {
			if contentSkip[k] || k == "meta" || k == "extension" {
				continue
			}
			collectStrings(c, b)
		}
	case []any:
		for _, c := range o {
			collectStrings(c, b)
		}
	case string:
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(o)
	}
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '<':
			in = true
			b.WriteByte(' ')
		case c == '>':
			in = false
		case !in:
			b.WriteByte(c)
		}
	}
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&nbsp;", " ", "&quot;", "\"").Replace(b.String())
}

// compartments adds the Patient compartments r belongs to: per the R4
// Patient CompartmentDefinition, the patients its compartment parameters
// reference; and a Patient is in its own.
func (x *extractor) compartments(typ string, r fhir.Object) {
	var ids []string
	add := func(id string) {
		for _, have := range ids {
			if have == id {
				return
			}
		}
		ids = append(ids, id)
	}
	if typ == "Patient" {
		if id := str(r, "id"); id != "" {
			add(id)
		}
	}
	cp := r4.PatientCompartment(typ)
	if len(cp) > 0 {
		for _, ref := range x.idx.References {
			if ref.Type == "Patient" && slicesContains(cp, ref.Param) {
				add(ref.ID)
			}
		}
	}
	for _, id := range ids {
		x.idx.Compartments = append(x.idx.Compartments, store.Compartment{Type: "Patient", ID: id})
	}
}
