package fhirpath

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// evalCtx is the state of one evaluation: the environment variables and
// the iteration variables of the innermost where/select/repeat/...
type evalCtx struct {
	resource []Value // %resource
	context  []Value // %context: the input the evaluation started from
	this     []Value // $this: the input of the current iteration (or the context)
	index    int     // $index
	total    []Value // $total in aggregate()
	opts     options
	rootBuf  [1]Value // backing store of resource, saving an allocation per evaluation
}

// literalNode is a constant collection (literal, {}).
type literalNode struct{ v []Value }

func (n *literalNode) eval(*evalCtx, []Value) ([]Value, error) { return n.v, nil }

// chainNode is left.right: right is evaluated with left's result as its input.
type chainNode struct{ left, right node }

func (n *chainNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	l, err := n.left.eval(c, in)
	if err != nil {
		return nil, err
	}
	if _, isMember := n.right.(*memberNode); isMember && len(l) == 0 {
		return nil, nil
	}
	return n.right.eval(c, l)
}

// specialNode is $this, $index or $total.
type specialNode struct{ name string }

func (n *specialNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	switch n.name {
	case "$this":
		return c.this, nil
	case "$index":
		return []Value{sysInt(int64(c.index))}, nil
	default:
		return c.total, nil
	}
}

// constNode is an environment variable: %resource, %context, %ucum, ...
type constNode struct{ name string }

func (n *constNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	switch n.name {
	case "resource", "rootResource":
		return c.resource, nil
	case "context":
		return c.context, nil
	case "ucum":
		return []Value{sysString("http://unitsofmeasure.org")}, nil
	case "sct":
		return []Value{sysString("http://snomed.info/sct")}, nil
	case "loinc":
		return []Value{sysString("http://loinc.org")}, nil
	}
	if v, ok := c.opts.vars[n.name]; ok {
		return v, nil
	}
	// FHIR's %vs-[name] and %ext-[name] stand for canonical URLs
	// (FHIR R4 §2.1.9.1.1).
	if rest, ok := strings.CutPrefix(n.name, "vs-"); ok {
		return []Value{sysString("http://hl7.org/fhir/ValueSet/" + rest)}, nil
	}
	if rest, ok := strings.CutPrefix(n.name, "ext-"); ok {
		return []Value{sysString("http://hl7.org/fhir/StructureDefinition/" + rest)}, nil
	}
	return nil, evalErr("unknown variable %%%s", n.name)
}

// unaryNode is a polarity operator.
type unaryNode struct {
	neg bool
	x   node
}

func (n *unaryNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	r, err := n.x.eval(c, in)
	if err != nil || len(r) == 0 {
		return nil, err
	}
	if len(r) > 1 {
		return nil, evalErr("polarity operator applied to %d items", len(r))
	}
	p, _ := prim(r[0])
	switch d := p.(type) {
	case int64:
		if n.neg {
			d = -d
		}
		return []Value{sysInt(d)}, nil
	case decimal:
		if n.neg {
			d = d.neg()
			if d.f == 0 {
				d.f = 0 // no negative zero
			}
		}
		return []Value{sysDecimal(d)}, nil
	case quantity:
		if n.neg {
			d.value = d.value.neg()
		}
		return []Value{sysQuantity(d)}, nil
	}
	return nil, evalErr("polarity operator applied to %s", r[0].typ)
}

// indexerNode is x[index].
type indexerNode struct{ x, index node }

func (n *indexerNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	r, err := n.x.eval(c, in)
	if err != nil || len(r) == 0 {
		return nil, err
	}
	idx, err := n.index.eval(c, c.this)
	if err != nil || len(idx) == 0 {
		return nil, err
	}
	i, ok := idx[0].data.(int64)
	if !ok || len(idx) != 1 {
		return nil, evalErr("an index must be one integer")
	}
	if i < 0 || i >= int64(len(r)) {
		return nil, nil
	}
	return r[i : i+1 : i+1], nil
}

// memberNode navigates to the children named name of each input item.
type memberNode struct {
	name  string
	first bool // starts a path: a type name here selects a matching context
	cache atomic.Pointer[navEntry]
}

// navEntry memoises how name is found under one (type, path): search
// indexing evaluates the same expression over resources of one type, so a
// one-entry cache per node removes the model lookups from the hot path.
type navEntry struct {
	def    *r4.Type
	path   string
	cands  []candidate // nil when the model does not know the name
	choice string      // set when the name is a choice element's JSON spelling (valueQuantity)
}

// candidate is one JSON property that can hold the element: one for an
// ordinary element, one per type for a choice element (value[x]).
type candidate struct {
	key      string
	typ      string
	def      *r4.Type
	path     string // for backbone elements: their path within def
	resource bool   // holds a resource (contained, Bundle.entry.resource)
	prim     bool
	extKey   string // "_" + key: a primitive's companion
}

func (n *memberNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if n.first && n.name[0] >= 'A' && n.name[0] <= 'Z' {
		var out []Value
		all := true
		for _, v := range in {
			if !v.sys && (v.typ == n.name || fhirIs(v.typ, n.name)) {
				out = append(out, v)
			} else {
				all = false
			}
		}
		if all {
			return in, nil // the usual case: Patient.name evaluated on a Patient
		}
		if out != nil || r4.Lookup(n.name) != nil {
			if out == nil && c.opts.strict {
				return nil, evalErr("the expression is about %s but the context is %s", n.name, in[0].typ)
			}
			return out, nil
		}
	}
	var out []Value
	var err error
	for i := range in {
		if out, err = n.children(out, &in[i], c.opts.strict); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (n *memberNode) children(out []Value, v *Value, strict bool) ([]Value, error) {
	obj, ok := v.data.(fhir.Object)
	def, path := v.def, v.path
	if !ok {
		// A primitive's children (id, extension) live in its companion.
		if v.ext == nil {
			return out, nil
		}
		obj, def, path = v.ext, r4.Lookup(v.typ), ""
	}
	if def == nil {
		return appendUntyped(out, obj, n.name), nil
	}
	e := n.cache.Load()
	if e == nil || e.def != def || e.path != path {
		e = navigation(def, path, n.name)
		n.cache.Store(e)
	}
	if e.choice != "" {
		// FHIRPath names a choice element without its type suffix
		// (FHIR R4 §2.1.9.1.5): Observation.value, not valueQuantity.
		return nil, evalErr("%s is not an element name: use %s (with ofType or as to pick the type)", n.name, e.choice)
	}
	if e.cands == nil {
		if strict {
			return nil, evalErr("%s has no element %s", elementName(def, path), n.name)
		}
		return appendUntyped(out, obj, n.name), nil
	}
	for i := range e.cands {
		cd := &e.cands[i]
		raw, ok := obj[cd.key]
		var ext any
		if cd.prim {
			ext = obj[cd.extKey]
		}
		if !ok && ext == nil {
			continue
		}
		out = appendRaw(out, raw, ext, cd)
	}
	return out, nil
}

// elementName names a type or backbone element for messages.
func elementName(def *r4.Type, path string) string {
	if path == "" {
		return def.Name
	}
	return def.Name + "." + path
}

// navKey identifies one name under one (type, path).
type navKey struct {
	def        *r4.Type
	path, name string
}

// navCache is shared by all expressions: a node that sees several types
// (Resource.meta.lastUpdated indexes every type) misses its own one-entry
// cache often, and this keeps the miss to one map lookup.
var navCache sync.Map // navKey -> *navEntry

func navigation(def *r4.Type, path, name string) *navEntry {
	k := navKey{def, path, name}
	if e, ok := navCache.Load(k); ok {
		return e.(*navEntry)
	}
	e := &navEntry{def: def, path: path, cands: lookupCandidates(def, path, name)}
	if el, _, ok := def.Child(path, name); ok && el.Choice {
		e.choice = el.Name
	}
	navCache.Store(k, e)
	return e
}

// lookupCandidates finds in the model the properties that hold element
// name under path in def.
func lookupCandidates(def *r4.Type, path, name string) []candidate {
	if el, tc, ok := def.Child(path, name); ok && !el.Choice {
		return []candidate{candidateFor(def, el, tc)}
	}
	p := name + "[x]"
	if path != "" {
		p = path + "." + p
	}
	el := def.Element(p)
	if el == nil || !el.Choice {
		return nil
	}
	cands := make([]candidate, 0, len(el.Types))
	for _, t := range el.Types {
		cd := candidateFor(def, el, t)
		cd.key = el.JSONName(t)
		cd.extKey = "_" + cd.key
		cands = append(cands, cd)
	}
	return cands
}

func candidateFor(def *r4.Type, el *r4.Element, tc string) candidate {
	cd := candidate{key: el.Name, typ: tc, extKey: "_" + el.Name}
	if el.Backbone {
		cd.def, cd.path = def, strings.TrimPrefix(el.Path, def.Name+".")
		if tc == "" {
			cd.typ = "BackboneElement"
		}
		return cd
	}
	t := r4.Lookup(tc)
	cd.def = t
	if tc == "Resource" || (t != nil && t.Kind == r4.Resource) {
		cd.resource = true
	}
	cd.prim = t == nil || t.Kind == r4.PrimitiveType
	return cd
}

// appendRaw adds the items of one JSON property (and its "_" companion).
func appendRaw(out []Value, raw, ext any, cd *candidate) []Value {
	if arr, ok := raw.([]any); ok {
		out = slices.Grow(out, len(arr))
		exts, _ := ext.([]any)
		for i, item := range arr {
			var e fhir.Object
			if i < len(exts) {
				e, _ = exts[i].(fhir.Object)
			}
			if item == nil && e == nil {
				continue
			}
			out = append(out, makeNode(item, e, cd))
		}
		return out
	}
	if raw == nil {
		// Only extensions: the element exists without a value.
		if exts, ok := ext.([]any); ok {
			for _, x := range exts {
				if e, ok := x.(fhir.Object); ok {
					out = append(out, makeNode(nil, e, cd))
				}
			}
			return out
		}
	}
	e, _ := ext.(fhir.Object)
	return append(out, makeNode(raw, e, cd))
}

func makeNode(raw any, ext fhir.Object, cd *candidate) Value {
	if cd.resource {
		if o, ok := raw.(fhir.Object); ok {
			return resourceValue(o)
		}
	}
	return Value{data: raw, ext: ext, def: cd.def, path: cd.path, typ: cd.typ}
}

// resourceValue makes the node for a resource, typed by its resourceType.
func resourceValue(o fhir.Object) Value {
	rt, _ := o["resourceType"].(string)
	return Value{data: o, def: r4.Lookup(rt), typ: rt}
}

// appendUntyped navigates JSON the model does not describe, guessing
// types from the JSON itself.
func appendUntyped(out []Value, obj fhir.Object, name string) []Value {
	raw, ok := obj[name]
	ext := obj["_"+name]
	if !ok && ext == nil {
		// An unknown choice element: valueString, valueQuantity, ...
		for k, x := range obj {
			if len(k) > len(name) && strings.HasPrefix(k, name) && k[len(name)] >= 'A' && k[len(name)] <= 'Z' {
				tc := k[len(name):]
				if r4.Lookup(tc) == nil {
					tc = strings.ToLower(tc[:1]) + tc[1:]
				}
				cd := candidate{key: k, typ: tc, def: r4.Lookup(tc)}
				out = appendRaw(out, x, obj["_"+k], &cd)
			}
		}
		return out
	}
	items, isArr := raw.([]any)
	if !isArr {
		items = []any{raw}
	}
	exts, _ := ext.([]any)
	if !isArr && ext != nil {
		exts = []any{ext}
	}
	for i, item := range items {
		var e fhir.Object
		if i < len(exts) {
			e, _ = exts[i].(fhir.Object)
		}
		v := Value{data: item, ext: e}
		switch x := item.(type) {
		case string:
			v.typ = "string"
		case bool:
			v.typ = "boolean"
		case json.Number:
			v.typ = "decimal"
			if !strings.ContainsAny(string(x), ".eE") {
				v.typ = "integer"
			}
		case fhir.Object:
			if rt, ok := x["resourceType"].(string); ok {
				v = resourceValue(x)
				_ = rt
			}
		case nil:
			if e == nil {
				continue
			}
		}
		out = append(out, v)
	}
	return out
}

// fhirIs reports whether FHIR type typ is name or specialises it.
func fhirIs(typ, name string) bool {
	for i := 0; typ != "" && i < 10; i++ {
		if typ == name {
			return true
		}
		t := r4.Lookup(typ)
		if t == nil {
			return false
		}
		typ = t.Base
	}
	return false
}

var systemTypes = map[string]bool{"Boolean": true, "String": true, "Integer": true, "Decimal": true,
	"Date": true, "DateTime": true, "Time": true, "Quantity": true, "Any": true}

// typeMatches implements is/as/ofType. exact (for as and ofType on
// primitives) refuses specialisations: code.as(string) is empty, as the
// suite expects.
func typeMatches(v Value, spec typeSpec, exact bool) (bool, error) {
	switch spec.ns {
	case "System":
		if !systemTypes[spec.name] {
			return false, nil
		}
		return v.sys && (v.typ == spec.name || spec.name == "Any"), nil
	case "FHIR", "":
		known := r4.Lookup(spec.name) != nil
		if !known && (spec.ns == "FHIR" || !systemTypes[spec.name]) {
			return false, evalErr("unknown type %s", spec)
		}
		if v.sys {
			return spec.ns == "" && (v.typ == spec.name || spec.name == "Any"), nil
		}
		if exact && isPrimitiveType(v.typ) {
			return v.typ == spec.name, nil
		}
		return fhirIs(v.typ, spec.name), nil
	}
	return false, evalErr("unknown type %s", spec)
}

func isPrimitiveType(name string) bool {
	t := r4.Lookup(name)
	return t != nil && t.Kind == r4.PrimitiveType
}

// typeOpNode is "x is T" or "x as T".
type typeOpNode struct {
	op   string
	x    node
	spec typeSpec
}

func (n *typeOpNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	r, err := n.x.eval(c, in)
	if err != nil || len(r) == 0 {
		return nil, err
	}
	if n.op == "as" && len(r) > 1 {
		// R4's search parameters apply the as operator to collections
		// ("Observation.component.value as Quantity") meaning ofType;
		// FHIR R5 makes that explicit. The as() function keeps
		// FHIRPath's single-item rule, as the suite checks.
		return ofType(r, n.spec)
	}
	return typeOp(n.op, r, n.spec)
}

func typeOp(op string, r []Value, spec typeSpec) ([]Value, error) {
	if len(r) > 1 {
		return nil, evalErr("%s applied to %d items", op, len(r))
	}
	ok, err := typeMatches(r[0], spec, op == "as")
	if err != nil {
		return nil, err
	}
	if op == "is" {
		return boolResult(ok), nil
	}
	if ok {
		return r, nil
	}
	return nil, nil
}

// typeFuncNode is is(T), as(T) or ofType(T).
type typeFuncNode struct {
	name string
	spec typeSpec
}

func (n *typeFuncNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if n.name != "ofType" {
		return typeOp(n.name, in, n.spec)
	}
	return ofType(in, n.spec)
}

func ofType(in []Value, spec typeSpec) ([]Value, error) {
	var out []Value
	for _, v := range in {
		ok, err := typeMatches(v, spec, true)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// callNode is a function call on its input.
type callNode struct {
	name string
	f    *funcDef
	args []node
}

func (n *callNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	return n.f.fn(c, in, n.args)
}

// now is the evaluation's clock: WithNow's time or, read once, the
// system's (now() is the same throughout one evaluation).
func (c *evalCtx) now() time.Time {
	if c.opts.now.IsZero() {
		c.opts.now = time.Now()
	}
	return c.opts.now
}

// arg evaluates a function argument: against $this, not against the
// function's input (FHIRPath §5: only iteration functions rebind $this).
func (c *evalCtx) arg(n node) ([]Value, error) { return n.eval(c, c.this) }

// iterate evaluates n once per item of in with $this and $index bound to it.
func (c *evalCtx) iterate(in []Value, n node, each func(i int, r []Value) (bool, error)) error {
	saveThis, saveIndex := c.this, c.index
	defer func() { c.this, c.index = saveThis, saveIndex }()
	for i := range in {
		c.this, c.index = in[i:i+1:i+1], i
		r, err := n.eval(c, c.this)
		if err != nil {
			return err
		}
		more, err := each(i, r)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
