// Package validate checks every resource written to sharedcare against the
// FHIR R4 definitions (internal/fhir/r4) and the NHS business rules that sit
// on top of them (NHS number check digits).
//
// It is the one gate between a parsed request body and the store: the engine
// calls Resource on every create, update, patch result and bundle entry, so a
// resource that reaches storage is structurally valid R4 JSON. The checks walk
// the parsed JSON (fhir.Object) guided by the generated element tables; there
// are no Go structs per resource type.
//
// What is checked: resourceType, id, unknown elements, cardinality (arrays
// exactly where the element repeats, no empty arrays, objects or nulls),
// required elements, the JSON kind and format of every primitive, choice
// types, primitive extensions (_birthDate, aligned _given arrays), contained
// and nested resources (Bundle.entry.resource, Parameters.parameter.resource)
// as resources of their own type, reference format and target types, codes
// of required bindings on code elements, the shape of extensions, and NHS
// numbers. Not checked: FHIRPath invariants beyond those listed, profiles,
// terminology bindings on Coding and CodeableConcept (their codes come from
// systems the server does not hold), and whether references resolve.
package validate

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/nhsnumber"
)

// Options are the switches of one validation.
type Options struct {
	Lenient bool // drop unknown elements (reporting each as a warning) instead of failing
}

// MaxIssues bounds the issues reported for one resource: enough to fix a
// feed's mapping in one round trip, small enough that a hostile body cannot
// make the answer larger than the request.
const MaxIssues = 100

// Issue codes used by the validator, from the FHIR issue-type value set.
const (
	CodeStructure    = "structure"     // wrong JSON shape: array vs single, empty, null, unknown element
	CodeRequired     = "required"      // a required element is missing
	CodeValue        = "value"         // a primitive's value is not of its type's format
	CodeInvalid      = "invalid"       // other structural failures (reference format, resourceType)
	CodeCodeInvalid  = "code-invalid"  // a code outside its required binding
	CodeBusinessRule = "business-rule" // NHS rules on top of the base specification
	CodeInformation  = "informational" // lenient drops, reported as warnings
)

// Resource validates r (a parsed resource) against the R4 definitions.
// It returns warnings (for lenient drops; r is modified in place to drop them) and an error:
// nil if valid; *fhir.Error kind EInvalid (400) with one Issue per problem (severity error, code,
// FHIRPath Expression like "Patient.identifier[0].value") for base-specification failures;
// kind EUnprocessable (422) when the only failures are business rules (invalid NHS number).
func Resource(r fhir.Object, opt Options) (warnings []fhir.Issue, err error) {
	if r == nil {
		return nil, fhir.Invalid("", "the resource is empty")
	}
	m := getModel()
	v := pool.Get().(*validator)
	v.m, v.opt = m, opt
	v.resource(r, 0)
	if opt.Lenient && len(v.warnings) > 0 && len(v.issues) == 0 {
		// What lenient handling leaves is stored as it is: check it is
		// valid strictly, so that no combination of drops (an emptied
		// required element, a misaligned _x array) lets invalid data in.
		v.opt.Lenient = false
		v.path = v.path[:0]
		v.resource(r, 0)
	}
	if len(v.warnings) > 0 {
		warnings = append([]fhir.Issue(nil), v.warnings...)
		sortIssues(warnings)
	}
	if len(v.issues) > 0 {
		issues := append([]fhir.Issue(nil), v.issues...)
		sortIssues(issues)
		if v.stopped {
			issues = append(issues, fhir.Issue{Severity: fhir.SeverityError, Code: "too-costly",
				Diagnostics: "validation stopped after " + strconv.Itoa(MaxIssues) + " issues; there may be more"})
		}
		kind := fhir.EUnprocessable
		if v.base > 0 {
			kind = fhir.EInvalid
		}
		err = &fhir.Error{Kind: kind, Issues: issues}
	}
	v.reset()
	pool.Put(v)
	return warnings, err
}

// sortIssues orders issues by location so that the same body always gives
// the same answer (objects are walked in map order).
func sortIssues(is []fhir.Issue) {
	sort.SliceStable(is, func(i, j int) bool { return is[i].Expression < is[j].Expression })
}

var pool = sync.Pool{New: func() any { return &validator{path: make([]seg, 0, 32)} }}

// seg is one step of the current location: a property name, and an index
// when the property repeats (-1 when it does not).
type seg struct {
	name string
	idx  int
}

type validator struct {
	m        *model
	opt      Options
	path     []seg // built into a string only when an issue is reported
	issues   []fhir.Issue
	warnings []fhir.Issue
	base     int  // issues that are base-specification failures (not business rules)
	stopped  bool // MaxIssues was reached and the walk stopped
	// targets are the allowed target types of the Reference being walked
	// (nil: any), set from its element because the Reference node is shared.
	targets map[string]struct{}
}

func (v *validator) reset() {
	v.path = v.path[:0]
	v.issues = v.issues[:0]
	v.warnings = v.warnings[:0]
	v.base, v.stopped = 0, false
	v.m, v.targets = nil, nil
}

func (v *validator) push(name string, idx int) { v.path = append(v.path, seg{name, idx}) }
func (v *validator) pop()                      { v.path = v.path[:len(v.path)-1] }

// where renders the current location as a FHIRPath expression, with extra
// (a property name) appended when not empty.
func (v *validator) where(extra string) string {
	var b strings.Builder
	for i, s := range v.path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		}
	}
	if extra != "" {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(extra)
	}
	return b.String()
}

// fail records a base-specification error at the current location (plus
// extra).
func (v *validator) fail(code, extra, msg string) {
	v.base++
	v.add(code, extra, msg)
}

func (v *validator) add(code, extra, msg string) {
	if len(v.issues) >= MaxIssues {
		v.stopped = true
		return
	}
	v.issues = append(v.issues, fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: msg, Expression: v.where(extra)})
}

func (v *validator) full() bool { return len(v.issues) >= MaxIssues }

// resource validates a resource at the current location. nested is 0 for
// the top-level resource, 1 inside Bundle.entry.resource or
// Parameters.parameter.resource at any depth, and 2 for a contained resource
// (which may not itself contain any).
func (v *validator) resource(r fhir.Object, nested int) {
	rt, ok := r["resourceType"].(string)
	switch {
	case r["resourceType"] == nil:
		v.fail(CodeRequired, "", "resourceType is missing")
		return
	case !ok:
		v.fail(CodeStructure, "resourceType", "resourceType must be a string")
		return
	case !r4.IsResource(rt):
		v.fail(CodeInvalid, "resourceType", "unknown resource type "+strconv.Quote(rt))
		return
	}
	n := v.m.typeNode(rt)
	if n == nil {
		v.fail(CodeInvalid, "resourceType", "unknown resource type "+strconv.Quote(rt))
		return
	}
	if nested == 0 {
		v.push(rt, -1)
		defer v.pop()
	}
	if nested == 2 {
		if _, has := r["contained"]; has {
			v.fail(CodeInvalid, "contained", "a contained resource must not contain other resources (dom-2)")
		}
		if meta, ok := r["meta"].(fhir.Object); ok {
			if _, has := meta["versionId"]; has {
				v.fail(CodeInvalid, "meta.versionId", "a contained resource must not have meta.versionId (dom-4)")
			}
			if _, has := meta["lastUpdated"]; has {
				v.fail(CodeInvalid, "meta.lastUpdated", "a contained resource must not have meta.lastUpdated (dom-4)")
			}
			if _, has := meta["security"]; has {
				v.fail(CodeInvalid, "meta.security", "a contained resource must not have security labels (dom-5): label the container")
			}
		}
	}
	v.object(r, n, true)
}

// object walks the properties of an object of node n. It reports true when
// lenient handling dropped every property, leaving the caller to drop the
// now empty object in turn.
func (v *validator) object(obj fhir.Object, n *node, isResource bool) (emptied bool) {
	if len(obj) == 0 {
		v.fail(CodeStructure, "", "empty object: FHIR JSON leaves absent elements out")
		return false
	}
	// The JSON name given for each choice group so far: R4 types have at
	// most a handful of choice elements per object, so a small array on
	// the stack does.
	var chosen [8]string
	for key, val := range obj {
		if v.full() {
			v.stopped = true // stop walking: nothing more would be reported
			return false
		}
		if isResource && key == "resourceType" {
			continue
		}
		name, ext := key, false
		if len(key) > 1 && key[0] == '_' {
			name, ext = key[1:], true
		}
		f := n.fields[name]
		if f == nil || (ext && f.kind != kPrimitive && !f.bare) {
			v.unknown(obj, key, n)
			continue
		}
		if f.bare {
			v.fail(CodeStructure, key, strconv.Quote(key)+" is a choice element: name it with its type, such as "+choiceExample(n, f))
			continue
		}
		if c := f.choice - 1; c >= 0 && c < len(chosen) {
			// valueString and _valueString are one value; valueString
			// and valueBoolean (or _valueBoolean) are two.
			switch chosen[c] {
			case "":
				chosen[c] = name
			case name:
			default:
				a, b := chosen[c], name
				if b < a {
					a, b = b, a
				}
				v.fail(CodeStructure, b, "only one type of "+n.choices[c]+"[x] may be given, not both "+a+" and "+b)
			}
		}
		if ext {
			v.primitiveExt(obj, f, key, val)
			continue
		}
		v.property(obj, f, key, val)
	}
	if len(obj) == 0 {
		return true
	}
	for i := range n.required {
		req := &n.required[i]
		present := false
		for _, k := range req.keys {
			if _, ok := obj[k]; ok {
				present = true
				break
			}
		}
		if !present {
			v.fail(CodeRequired, req.name, req.name+" is required ("+req.path+" has min 1)")
		}
	}
	switch {
	case n.identifier:
		v.identifier(obj)
	case n.extension:
		v.extensionShape(obj)
	case n.reference:
		v.reference(obj)
	}
	return false
}

func choiceExample(n *node, f *field) string {
	for name, g := range n.fields {
		if g.el == f.el && !g.bare {
			return name
		}
	}
	return f.name + "String"
}

// emptied drops obj[key] (or its entries at idx) whose content lenient
// handling dropped entirely, with a warning: an empty object is not valid
// FHIR JSON, so what was left of it must go too.
func (v *validator) emptied(obj fhir.Object, key string, idx []int) {
	v.warnings = append(v.warnings, fhir.Issue{
		Severity: fhir.SeverityWarning, Code: CodeInformation, Expression: v.where(key),
		Diagnostics: key + " held only unknown elements and was dropped with them (lenient handling)",
	})
	if idx == nil {
		delete(obj, key)
		return
	}
	arr := obj[key].([]any)
	if key[0] == '_' {
		// Keep the primitive extension array aligned: emptied entries
		// become null, and an all-null array goes.
		for _, i := range idx {
			arr[i] = nil
		}
		for _, item := range arr {
			if item != nil {
				return
			}
		}
		delete(obj, key)
		return
	}
	kept := make([]any, 0, len(arr)-len(idx))
	for i, item := range arr {
		if len(idx) > 0 && idx[0] == i {
			idx = idx[1:]
			continue
		}
		kept = append(kept, item)
	}
	if len(kept) == 0 {
		delete(obj, key)
		return
	}
	obj[key] = kept
}

// unknown handles a property the definitions do not have: an error in strict
// mode; in lenient mode it is removed and reported as a warning.
func (v *validator) unknown(obj fhir.Object, key string, n *node) {
	if v.opt.Lenient {
		delete(obj, key)
		v.warnings = append(v.warnings, fhir.Issue{
			Severity: fhir.SeverityWarning, Code: CodeInformation, Expression: v.where(key),
			Diagnostics: "unknown element " + strconv.Quote(key) + " in " + n.name + " was dropped (lenient handling)",
		})
		return
	}
	v.fail(CodeStructure, key, "unknown element "+strconv.Quote(key)+" in "+n.name)
}

// property checks one property's cardinality and then each value.
func (v *validator) property(obj fhir.Object, f *field, key string, val any) {
	arr, isArr := val.([]any)
	if !f.many {
		if isArr {
			v.fail(CodeStructure, key, key+" has at most one value and must not be a JSON array")
			return
		}
		if val == nil {
			v.fail(CodeStructure, key, "null is not a value in FHIR JSON: leave the element out")
			return
		}
		v.push(key, -1)
		empty := v.value(f, val)
		v.pop()
		if empty {
			v.emptied(obj, key, nil)
		}
		return
	}
	if !isArr {
		v.fail(CodeStructure, key, key+" repeats and must be a JSON array, even with one value")
		return
	}
	if len(arr) == 0 {
		v.fail(CodeStructure, key, "empty array: FHIR JSON leaves absent elements out")
		return
	}
	if f.el.Max > 1 && len(arr) > f.el.Max {
		v.fail(CodeStructure, key, key+" has "+strconv.Itoa(len(arr))+" values, at most "+strconv.Itoa(f.el.Max)+" allowed")
	}
	var exts []any
	if f.kind == kPrimitive {
		exts, _ = obj["_"+key].([]any)
	}
	var empty []int
	for i, item := range arr {
		if item == nil {
			// A null keeps a primitive array aligned with its _x
			// companion; it is allowed only where the companion has
			// an entry at the same index.
			if f.kind == kPrimitive && i < len(exts) && exts[i] != nil {
				continue
			}
			v.fail(CodeStructure, key+"["+strconv.Itoa(i)+"]", "null is not a value in FHIR JSON")
			continue
		}
		v.push(key, i)
		if v.value(f, item) {
			empty = append(empty, i)
		}
		v.pop()
	}
	if empty != nil {
		v.emptied(obj, key, empty)
	}
}

// primitiveExt checks "_x", the id and extensions of primitive x.
func (v *validator) primitiveExt(obj fhir.Object, f *field, key string, val any) {
	name := key[1:]
	elem := v.m.types["Element"]
	if !f.many {
		o, ok := val.(fhir.Object)
		if !ok {
			v.fail(CodeStructure, key, key+" must be an object holding the id and extensions of "+name)
			return
		}
		v.push(name, -1)
		empty := v.object(o, elem, false)
		v.pop()
		if empty {
			v.emptied(obj, key, nil)
		}
		return
	}
	arr, ok := val.([]any)
	if !ok {
		v.fail(CodeStructure, key, key+" must be an array aligned with "+name)
		return
	}
	if len(arr) == 0 {
		v.fail(CodeStructure, key, "empty array: FHIR JSON leaves absent elements out")
		return
	}
	if vals, has := obj[name]; has {
		if va, ok := vals.([]any); ok && len(va) != len(arr) {
			v.fail(CodeStructure, key, key+" has "+strconv.Itoa(len(arr))+" entries but "+name+" has "+strconv.Itoa(len(va))+": they must align, with null for the gaps")
			return
		}
	}
	var empty []int
	for i, item := range arr {
		if item == nil {
			continue // alignment; a null on both sides is caught in property
		}
		o, ok := item.(fhir.Object)
		if !ok {
			v.fail(CodeStructure, key+"["+strconv.Itoa(i)+"]", key+" entries must be objects or null")
			continue
		}
		v.push(name, i)
		if v.object(o, elem, false) {
			empty = append(empty, i)
		}
		v.pop()
	}
	if empty != nil {
		v.emptied(obj, key, empty)
		return
	}
	if _, has := obj[name]; !has {
		// Without the values array, the nulls in _x have no partner.
		for i, item := range arr {
			if item == nil {
				v.fail(CodeStructure, key+"["+strconv.Itoa(i)+"]", "null is not a value in FHIR JSON")
			}
		}
	}
}

// value checks one (non-array) value of field f at the current location,
// reporting true when lenient handling emptied it.
func (v *validator) value(f *field, val any) bool {
	switch f.kind {
	case kPrimitive:
		v.primitive(f, val)
	case kComplex:
		o, ok := val.(fhir.Object)
		if !ok {
			v.fail(CodeStructure, "", "must be a JSON object ("+f.typ+")")
			return false
		}
		if f.node.reference {
			saved := v.targets
			v.targets = f.targets
			empty := v.object(o, f.node, false)
			v.targets = saved
			return empty
		}
		return v.object(o, f.node, false)
	case kResource:
		o, ok := val.(fhir.Object)
		if !ok {
			v.fail(CodeStructure, "", "must be a JSON object (a resource)")
			return false
		}
		nested := 1
		if f.name == "contained" {
			nested = 2
		}
		v.resource(o, nested)
	}
	return false
}

// primitive checks a primitive value's JSON kind and format.
func (v *validator) primitive(f *field, val any) {
	switch f.prim {
	case pBoolean:
		if _, ok := val.(bool); !ok {
			v.fail(CodeValue, "", "must be a JSON boolean (true or false), not "+jsonKind(val))
		}
		return
	case pDecimal, pInteger, pPositiveInt, pUnsignedInt:
		num, ok := val.(json.Number)
		switch x := val.(type) {
		// Objects built in Go rather than parsed may hold Go numbers.
		case int:
			num, ok = json.Number(strconv.Itoa(x)), true
		case int64:
			num, ok = json.Number(strconv.FormatInt(x, 10)), true
		case float64:
			num, ok = json.Number(strconv.FormatFloat(x, 'g', -1, 64)), true
		}
		if !ok {
			v.fail(CodeValue, "", "must be a JSON number ("+f.typ+"), not "+jsonKind(val))
			return
		}
		if f.prim == pDecimal {
			return // the parser accepted it as a JSON number, which is the decimal grammar
		}
		i, err := strconv.ParseInt(string(num), 10, 32)
		switch {
		case err != nil && strings.ContainsAny(string(num), ".eE"):
			v.fail(CodeValue, "", f.typ+" must be a whole number without fraction or exponent, not "+string(num))
		case err != nil:
			v.fail(CodeValue, "", f.typ+" "+string(num)+" is out of range (-2147483648..2147483647)")
		case f.prim == pPositiveInt && i < 1:
			v.fail(CodeValue, "", "positiveInt must be 1 or more, not "+string(num))
		case f.prim == pUnsignedInt && i < 0:
			v.fail(CodeValue, "", "unsignedInt must be 0 or more, not "+string(num))
		}
		return
	}
	s, ok := val.(string)
	if !ok {
		v.fail(CodeValue, "", "must be a JSON string ("+f.typ+"), not "+jsonKind(val))
		return
	}
	if s == "" {
		v.fail(CodeValue, "", "must not be empty: FHIR strings have content or are absent")
		return
	}
	good := true
	switch f.prim {
	case pString, pMarkdown:
		if ok, why := validString(s); !ok {
			v.fail(CodeValue, "", f.typ+" "+why)
		}
		return
	case pCode:
		good = validCode(s)
		if good && f.required != nil {
			if _, in := f.required[s]; !in {
				v.fail(CodeCodeInvalid, "", strconv.Quote(s)+" is not a code of the required value set "+f.el.ValueSet)
			}
			return
		}
	case pID:
		good = validID(s)
	case pURI, pURL, pCanonical:
		good = validURI(s)
	case pOID:
		good = validOID(s)
	case pUUID:
		good = validUUID(s)
	case pBase64Binary:
		good = validBase64(s)
	case pInstant:
		good = validInstant(s)
	case pDate:
		good = validDate(s)
	case pDateTime:
		good = validDateTime(s)
	case pTime:
		good = validTime(s)
	case pXHTML:
		// Narrative.div must be an XHTML div element; the content is
		// not parsed here (no script checking: the server never renders
		// it as HTML).
		t := strings.TrimLeft(s, " \t\r\n")
		good = strings.HasPrefix(t, "<div")
	}
	if !good {
		v.fail(CodeValue, "", strconv.Quote(truncate(s))+" is not a valid "+f.typ+formatHint(f.prim))
	}
}

func formatHint(p prim) string {
	switch p {
	case pID:
		return " (1 to 64 of A-Z a-z 0-9 - .)"
	case pCode:
		return " (no leading, trailing or repeated whitespace)"
	case pURI, pURL, pCanonical:
		return " (no whitespace)"
	case pOID:
		return " (urn:oid:1.2.3)"
	case pUUID:
		return " (urn:uuid: and lower-case hex 8-4-4-4-12)"
	case pDate:
		return " (YYYY, YYYY-MM or YYYY-MM-DD)"
	case pDateTime:
		return " (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone)"
	case pInstant:
		return " (YYYY-MM-DDThh:mm:ss[.sss] with Z or ±hh:mm)"
	case pTime:
		return " (hh:mm:ss)"
	case pXHTML:
		return " (an XHTML <div>)"
	}
	return ""
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func jsonKind(val any) string {
	switch val.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case fhir.Object:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	}
	return "an unexpected value"
}

// identifier applies the NHS number rule: an identifier in the NHS number
// system carries a ten-digit number with a valid Modulus 11 check digit,
// stored without spaces (FHIR identifiers are compared as exact strings, so
// "943 476 5919" would never match a search for 9434765919).
func (v *validator) identifier(obj fhir.Object) {
	if sys, _ := obj["system"].(string); sys != nhsnumber.System {
		return
	}
	val, ok := obj["value"].(string)
	switch {
	case !ok:
		v.add(CodeBusinessRule, "value", "an NHS number identifier must have a value")
	case nhsnumber.Valid(val):
	default:
		msg := strconv.Quote(truncate(val)) + " is not a valid NHS number: it must be 10 digits with a valid Modulus 11 check digit"
		if n, ok := nhsnumber.Normalize(val); ok {
			msg = strconv.Quote(val) + " must be stored in normalised form " + strconv.Quote(n) + " (10 digits, no spaces or dashes)"
		}
		v.add(CodeBusinessRule, "value", msg)
	}
}

// extensionShape applies ext-1: an extension has a value or nested
// extensions, not both (url is a required element, checked by the walk).
func (v *validator) extensionShape(obj fhir.Object) {
	hasValue := false
	for k := range obj {
		if len(k) > 5 && strings.HasPrefix(k, "value") {
			hasValue = true
			break
		}
	}
	_, hasExt := obj["extension"]
	switch {
	case hasValue && hasExt:
		v.fail(CodeInvalid, "", "an extension must have either a value or nested extensions, not both (ext-1)")
	case !hasValue && !hasExt:
		v.fail(CodeInvalid, "", "an extension must have either a value or nested extensions (ext-1)")
	}
}

// reference checks a Reference: its reference (see referenceType) and its
// type, which when it names a resource type must be a known one, allowed by
// the element, and agree with the reference.
func (v *validator) reference(obj fhir.Object) {
	refType := v.referenceType(obj)
	typ, _ := obj["type"].(string)
	if typ == "" || strings.ContainsAny(typ, ":/") {
		return // absent, or an absolute URL of a logical model: not checked
	}
	switch {
	case !r4.IsResource(typ):
		v.fail(CodeInvalid, "type", strconv.Quote(typ)+" is not a resource type")
	case refType != "" && refType != typ:
		v.fail(CodeInvalid, "type", "type "+typ+" contradicts the reference to a "+refType)
	case refType == "" && v.targets != nil:
		if _, allowed := v.targets[typ]; !allowed {
			v.fail(CodeInvalid, "type", "a reference to "+typ+" is not allowed here")
		}
	}
}

// reference checks Reference.reference: a local "#id", a relative
// "Type/id[/_history/vid]", a conditional "Type?query" (resolved by the
// engine inside transactions), an absolute URL, or a urn:uuid:/urn:oid:
// (bundle-local). When it names a type, the type must exist and be one the
// element allows; that type is returned ("" when none or invalid).
func (v *validator) referenceType(obj fhir.Object) string {
	ref, ok := obj["reference"].(string)
	if !ok || ref == "" {
		return "" // kind and emptiness are reported by the primitive check
	}
	bad := func(why string) {
		v.fail(CodeInvalid, "reference", strconv.Quote(truncate(ref))+" is not a valid reference: "+why)
	}
	switch {
	case ref[0] == '#':
		if len(ref) > 1 && !validID(ref[1:]) {
			bad("a local reference is # followed by the id of a contained resource")
		}
		return ""
	case strings.HasPrefix(ref, "urn:uuid:"):
		if !uuidBody(ref[len("urn:uuid:"):], true) {
			bad("urn:uuid: must be followed by a UUID")
		}
		return ""
	case strings.HasPrefix(ref, "urn:oid:"):
		if !validOID(ref) {
			bad("urn:oid: must be followed by an OID")
		}
		return ""
	case strings.Contains(ref, "://"):
		if !validURI(ref) {
			bad("an absolute URL must not contain whitespace")
		}
		return ""
	}
	typ, rest, _ := strings.Cut(ref, "/")
	if q := strings.IndexByte(typ, '?'); q >= 0 && rest == "" {
		typ = typ[:q] // conditional reference Type?search
	} else {
		id, hist, hasHist := strings.Cut(rest, "/")
		switch {
		case !validID(id):
			bad("expected Type/id, Type/id/_history/version, #id, an absolute URL or urn:uuid:")
			return ""
		case hasHist:
			h, vid, _ := strings.Cut(hist, "/")
			if h != "_history" || !validID(vid) {
				bad("expected Type/id/_history/version")
				return ""
			}
		}
	}
	if !r4.IsResource(typ) {
		bad(strconv.Quote(typ) + " is not a resource type")
		return ""
	}
	if t := v.targets; t != nil {
		if _, allowed := t[typ]; !allowed {
			v.fail(CodeInvalid, "reference", "a reference to "+typ+" is not allowed here")
			return ""
		}
	}
	return typ
}
