package validate

import (
	"strings"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// The validator does not walk r4.Type.Elements directly: that map is keyed by
// dotted paths, so looking a JSON property up in it would mean building a
// string per property. Instead, on first use, every type reachable from the
// resource types is compiled once into a tree of nodes keyed by the JSON
// property names as they appear on the wire ("valueQuantity", not
// "value[x]"). A property lookup is then one map access and no allocation.

// kind is how a property's value is checked.
type kind uint8

const (
	kPrimitive kind = iota + 1
	kComplex        // a data type or backbone element: an object walked with node
	kResource       // an inline resource (contained, Bundle.entry.resource): walked as its own resourceType
)

// prim is a primitive type, checked by a hand-written function rather than
// the definitions' regexes: the checks are on the hot path of every write and
// some rules (days per month) are beyond the regexes anyway.
type prim uint8

const (
	pString prim = iota + 1
	pBoolean
	pInteger
	pPositiveInt
	pUnsignedInt
	pDecimal
	pMarkdown
	pCode
	pID
	pURI
	pURL
	pCanonical
	pOID
	pUUID
	pBase64Binary
	pInstant
	pDate
	pDateTime
	pTime
	pXHTML
)

var primByName = map[string]prim{
	"string": pString, "boolean": pBoolean, "integer": pInteger,
	"positiveInt": pPositiveInt, "unsignedInt": pUnsignedInt, "decimal": pDecimal,
	"markdown": pMarkdown, "code": pCode, "id": pID, "uri": pURI, "url": pURL,
	"canonical": pCanonical, "oid": pOID, "uuid": pUUID, "base64Binary": pBase64Binary,
	"instant": pInstant, "date": pDate, "dateTime": pDateTime, "time": pTime,
	"xhtml": pXHTML,
}

// field is one JSON property of an object: an element, or for a choice
// element one of its typed names (valueQuantity, valueString, ...).
type field struct {
	el     *r4.Element
	name   string // JSON property name
	typ    string // the type of this property ("Quantity", "string", "BackboneElement")
	kind   kind
	prim   prim
	node   *node // for kComplex
	many   bool  // max != 1: the JSON value is an array
	choice int   // 1-based index of the choice group within its node; 0 if not a choice
	// bare marks "value" for "value[x]": never valid, kept only to say so clearly.
	bare bool
	// required lists the codes of a required binding on a code element
	// (nil when there is none or it is not enumerable), as a set.
	required map[string]struct{}
	// targets lists the allowed reference target types when they are
	// specific; nil means any resource type.
	targets map[string]struct{}
}

// requirement is one element with min > 0 of a node: present when any of
// keys (its JSON names and their "_" primitive-extension forms) is.
type requirement struct {
	name string // JSON base name ("status", "value" for value[x])
	path string // element path, for messages
	keys []string
}

// node is the compiled structure of one object type: a data type
// ("HumanName"), a resource ("Patient") or a backbone element
// ("Patient.contact").
type node struct {
	name     string // type name or element path
	fields   map[string]*field
	required []requirement
	choices  []string // JSON base name of each choice group ("value"), by choice-1
	// special checks run after the generic walk.
	identifier bool // an Identifier: NHS number rule
	extension  bool // an Extension: url, and value[x] xor extension
	reference  bool // a Reference: reference format and targets
	resource   bool // a resource type (root node)
}

type model struct {
	types map[string]*node // by type name, resources and complex types
}

var (
	modelOnce sync.Once
	theModel  *model
)

func getModel() *model {
	modelOnce.Do(func() { theModel = compile() })
	return theModel
}

// compile builds the nodes of every resource type and every type they use.
func compile() *model {
	m := &model{types: make(map[string]*node)}
	for _, name := range r4.ResourceTypes() {
		m.typeNode(name)
	}
	// Element is the shape of a primitive's "_x" companion object.
	m.typeNode("Element")
	return m
}

// typeNode returns the node of a complex or resource type, compiling it on
// first use. It returns nil for unknown or primitive types.
func (m *model) typeNode(name string) *node {
	if n, ok := m.types[name]; ok {
		return n
	}
	t := r4.Lookup(name)
	if t == nil || t.Kind == r4.PrimitiveType {
		return nil
	}
	// Group the elements by their parent path: "" for the type's own
	// properties, "contact" for Patient.contact's, and so on.
	byParent := make(map[string][]*r4.Element)
	for rel, el := range t.Elements {
		rel = relPath(name, rel)
		if rel == "" {
			continue
		}
		parent := ""
		if i := strings.LastIndexByte(rel, '.'); i >= 0 {
			parent = rel[:i]
		}
		byParent[parent] = append(byParent[parent], el)
	}
	n := &node{name: name, resource: t.Kind == r4.Resource}
	switch name {
	case "Identifier":
		n.identifier = true
	case "Extension":
		n.extension = true
	case "Reference":
		n.reference = true
	}
	m.types[name] = n // before filling, for recursive types (Extension.extension)
	backbones := make(map[string]*node)
	var fill func(n *node, parent string)
	nodeFor := func(path string) *node {
		if b, ok := backbones[path]; ok {
			return b
		}
		b := &node{name: name + "." + path}
		backbones[path] = b
		fill(b, path)
		return b
	}
	fill = func(n *node, parent string) {
		n.fields = make(map[string]*field)
		for _, el := range byParent[parent] {
			rel := relPath(name, el.Path)
			prop := rel
			if parent != "" {
				prop = rel[len(parent)+1:]
			}
			many := el.Max != 1
			base := strings.TrimSuffix(prop, "[x]")
			req := requirement{name: base, path: n.name + "." + base}
			var targets map[string]struct{}
			if len(el.Targets) > 0 && !(len(el.Targets) == 1 && el.Targets[0] == "Resource") {
				targets = make(map[string]struct{}, len(el.Targets))
				for _, tg := range el.Targets {
					targets[tg] = struct{}{}
				}
			}
			var required map[string]struct{}
			if el.Required != nil {
				required = make(map[string]struct{}, len(el.Required))
				for _, c := range el.Required {
					required[c] = struct{}{}
				}
			}
			mk := func(jsonName, typ string, choice int) *field {
				f := &field{el: el, name: jsonName, typ: typ, many: many, choice: choice, targets: targets, required: required}
				switch {
				case el.ContentRef != "":
					ref := strings.TrimPrefix(el.ContentRef, "#")
					f.kind, f.node = kComplex, nodeFor(relPath(name, ref))
				case el.Backbone || ((typ == "BackboneElement" || typ == "Element") && len(byParent[rel]) > 0):
					f.kind, f.node = kComplex, nodeFor(rel)
				case typ == "Resource":
					f.kind = kResource
				default:
					if p, ok := primByName[typ]; ok {
						f.kind, f.prim = kPrimitive, p
					} else if c := m.typeNode(typ); c != nil {
						f.kind, f.node = kComplex, c
					} else {
						// A type this model does not know: accept any
						// JSON rather than reject valid data.
						f.kind = 0
					}
				}
				n.fields[jsonName] = f
				req.keys = append(req.keys, jsonName)
				if f.kind == kPrimitive {
					req.keys = append(req.keys, "_"+jsonName)
				}
				return f
			}
			if el.Choice || strings.HasSuffix(prop, "[x]") {
				n.choices = append(n.choices, base)
				idx := len(n.choices)
				for _, tc := range el.Types {
					tc = typeCode(name, rel, tc)
					mk(base+strings.ToUpper(tc[:1])+tc[1:], tc, idx)
				}
				n.fields[base] = &field{el: el, name: base, bare: true}
			} else {
				tc := ""
				if len(el.Types) > 0 {
					tc = typeCode(name, rel, el.Types[0])
				}
				if tc == "" && len(byParent[rel]) > 0 {
					tc = "BackboneElement"
				}
				mk(prop, tc, 0)
			}
			if el.Min > 0 {
				n.required = append(n.required, req)
			}
		}
	}
	fill(n, "")
	return n
}

// relPath returns path relative to the type name: "Patient.contact.name" ->
// "contact.name", "Patient" -> "". Paths already relative are kept.
func relPath(typ, path string) string {
	if path == typ {
		return ""
	}
	if strings.HasPrefix(path, typ+".") {
		return path[len(typ)+1:]
	}
	return path
}

// typeCode normalises the type codes of the few elements the definitions
// type with FHIRPath system types (Resource.id, Element.id, Extension.url)
// to the FHIR primitive the specification gives them.
func typeCode(typ, rel, code string) string {
	if !strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
		return code
	}
	switch {
	case rel == "id" && r4.Lookup(typ) != nil && r4.Lookup(typ).Kind == r4.Resource:
		return "id"
	case typ == "Extension" && rel == "url":
		return "uri"
	}
	switch strings.TrimPrefix(code, "http://hl7.org/fhirpath/System.") {
	case "Boolean":
		return "boolean"
	case "Integer":
		return "integer"
	case "Decimal":
		return "decimal"
	case "Date":
		return "date"
	case "DateTime":
		return "dateTime"
	case "Time":
		return "time"
	}
	return "string"
}
