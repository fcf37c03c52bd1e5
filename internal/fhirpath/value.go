package fhirpath

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// Value is one item of a FHIRPath collection: either a node of the
// resource (with its FHIR type from the R4 model where known) or a System
// value computed by the expression (a literal, a count, a comparison).
type Value struct {
	// data is the JSON of a FHIR node (fhir.Object, string, json.Number,
	// bool; nil for a primitive that has only extensions) or a System
	// value (bool, int64, decimal, string, dateTime, quantity).
	data any
	// ext is a primitive's companion object ("_birthDate"): its id and
	// extensions.
	ext fhir.Object
	// def is the type whose elements describe data's children; for a
	// backbone element it is the enclosing type and path says where.
	def  *r4.Type
	path string
	// typ is the type name: FHIR ("HumanName", "date",
	// "BackboneElement") or, when sys, System ("Integer", "Quantity").
	typ string
	sys bool
}

// Type returns the name of the value's type: a FHIR type name for nodes of
// the resource ("HumanName", "Period", "dateTime", "code", "Patient";
// "BackboneElement" for nested elements; "" where the model does not know
// it) and a System type name ("Boolean", "String", "Integer", "Decimal",
// "Date", "DateTime", "Time", "Quantity") for computed values.
func (v Value) Type() string { return v.typ }

// IsSystem reports whether the value was computed by the expression rather
// than taken from the resource, so Type is a System type name.
func (v Value) IsSystem() bool { return v.sys }

// JSON returns the value as parsed JSON: for nodes of the resource the
// node itself (fhir.Object, string, json.Number, bool; nil when a
// primitive carries only extensions); for System values the FHIR JSON
// spelling (bool, json.Number, string, and a Quantity object with value,
// unit, system and code).
func (v Value) JSON() any {
	if !v.sys {
		return v.data
	}
	switch d := v.data.(type) {
	case int64:
		return json.Number(strconv.FormatInt(d, 10))
	case decimal:
		return json.Number(d.String())
	case dateTime:
		return d.String()
	case quantity:
		o := fhir.Object{"value": json.Number(d.value.String()), "unit": d.unit}
		if code, ok := ucumCode(d.unit); ok {
			o["system"] = "http://unitsofmeasure.org"
			o["code"] = code
		}
		return o
	}
	return v.data
}

// Extensions returns the extension array of a primitive's companion
// ("_birthDate".extension), or of a complex node.
func (v Value) Extensions() []any {
	if o, ok := v.data.(fhir.Object); ok {
		e, _ := o["extension"].([]any)
		return e
	}
	e, _ := v.ext["extension"].([]any)
	return e
}

// String returns the value as FHIRPath's toString() would, or its JSON.
func (v Value) String() string {
	if s, ok := toStringValue(v); ok {
		return s
	}
	return string(fhir.Marshal(v.JSON()))
}

func sysBool(b bool) Value         { return Value{data: b, typ: "Boolean", sys: true} }
func sysInt(n int64) Value         { return Value{data: n, typ: "Integer", sys: true} }
func sysDecimal(d decimal) Value   { return Value{data: d, typ: "Decimal", sys: true} }
func sysString(s string) Value     { return Value{data: s, typ: "String", sys: true} }
func sysQuantity(q quantity) Value { return Value{data: q, typ: "Quantity", sys: true} }
func sysDateTime(d dateTime) Value {
	return Value{data: d, typ: [...]string{"Date", "DateTime", "Time"}[d.kind], sys: true}
}

var (
	trueV  = []Value{sysBool(true)}
	falseV = []Value{sysBool(false)}
)

func boolResult(b bool) []Value {
	if b {
		return trueV
	}
	return falseV
}

// systemOf maps FHIR primitive types to the System type their values
// convert to (FHIR R4 §2.1.9.1.3 "FHIR primitive types and FHIRPath").
var systemOf = map[string]string{
	"boolean": "Boolean", "integer": "Integer", "positiveInt": "Integer", "unsignedInt": "Integer",
	"decimal": "Decimal", "date": "Date", "dateTime": "DateTime", "instant": "DateTime", "time": "Time",
	"string": "String", "code": "String", "id": "String", "uri": "String", "url": "String",
	"canonical": "String", "oid": "String", "uuid": "String", "markdown": "String",
	"base64Binary": "String", "xhtml": "String",
	"Quantity": "Quantity", "Age": "Quantity", "Duration": "Quantity", "Distance": "Quantity",
	"Count": "Quantity", "SimpleQuantity": "Quantity", "MoneyQuantity": "Quantity",
}

// prim returns the System value of v: bool, int64, decimal, string,
// dateTime or quantity; ok is false for complex nodes and nodes without a
// value.
func prim(v Value) (any, bool) {
	if v.sys {
		return v.data, true
	}
	switch d := v.data.(type) {
	case string:
		switch systemOf[v.typ] {
		case "Date":
			if t, ok := parseDateTime(d, kDate); ok {
				return t, true
			}
		case "DateTime":
			if t, ok := parseDateTime(d, kDateTime); ok {
				return t, true
			}
			if t, ok := parseDateTime(d, kDate); ok {
				t.kind = kDateTime
				return t, true
			}
		case "Time":
			if t, ok := parseDateTime(d, kTime); ok {
				return t, true
			}
		}
		return d, true
	case bool:
		return d, true
	case json.Number:
		if systemOf[v.typ] != "Decimal" {
			if n, err := parseInt(string(d)); err == nil {
				return n, true
			}
		}
		if x, ok := parseDecimal(string(d)); ok {
			return x, true
		}
	case fhir.Object:
		if systemOf[v.typ] == "Quantity" {
			return quantityOf(d)
		}
	}
	return nil, false
}

// quantityOf converts a FHIR Quantity to a System Quantity: the UCUM code
// when the system is UCUM, else the unit text.
func quantityOf(o fhir.Object) (any, bool) {
	n, ok := o["value"].(json.Number)
	if !ok {
		return nil, false
	}
	d, ok := parseDecimal(string(n))
	if !ok {
		return nil, false
	}
	unit, _ := o["unit"].(string)
	if code, ok := o["code"].(string); ok && code != "" {
		if sys, _ := o["system"].(string); sys == "http://unitsofmeasure.org" || sys == "" {
			unit = code
		}
	}
	if unit == "" {
		unit = "1"
	}
	return quantity{d, unit}, true
}

func parseInt(s string) (int64, error) {
	return strconv.ParseInt(s, 10, 64)
}

// decimal is a FHIRPath Decimal: a float64 with the number of digits after
// the point that it was written or computed with, which equality,
// equivalence and toString need (1.0 ~ 1.04 compares at one digit).
// float64 suffices for the 28-digit/8-place range the specification
// requires of clinical values; results are rounded to their scale so that
// 0.1 + 0.2 = 0.3.
type decimal struct {
	f     float64
	scale int // digits after the point; -1 when unknown (after division)
}

func parseDecimal(s string) (decimal, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return decimal{}, false
	}
	scale := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		scale = j - i - 1
	}
	if strings.ContainsAny(s, "eE") {
		scale = -1
	}
	return decimal{f, scale}, true
}

func toDecimal(v Value) decimal {
	switch d := v.data.(type) {
	case int64:
		return decimal{float64(d), 0}
	case decimal:
		return d
	}
	return decimal{}
}

func (d decimal) neg() decimal { return decimal{-d.f, d.scale} }

// round rounds to the scale (or to 8 places when unknown) to remove binary
// noise.
func (d decimal) round() decimal {
	s := d.scale
	if s < 0 || s > 15 {
		s = 15
	}
	p := math.Pow10(s)
	r := math.Round(d.f*p) / p
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return d
	}
	d.f = r
	return d
}

func (d decimal) String() string {
	if d.scale >= 0 && d.scale <= 15 {
		return strconv.FormatFloat(d.f, 'f', d.scale, 64)
	}
	r := decimal{d.f, 8}.round()
	return strconv.FormatFloat(r.f, 'f', -1, 64)
}

// toStringValue converts a value to a String as toString() does.
func toStringValue(v Value) (string, bool) {
	p, ok := prim(v)
	if !ok {
		return "", false
	}
	switch d := p.(type) {
	case string:
		return d, true
	case bool:
		if d {
			return "true", true
		}
		return "false", true
	case int64:
		return strconv.FormatInt(d, 10), true
	case decimal:
		return d.String(), true
	case dateTime:
		return d.String(), true
	case quantity:
		return d.String(), true
	}
	return "", false
}

// isPrimitiveNode reports whether v is a FHIR primitive (or System) value
// rather than an object with children.
func isPrimitiveNode(v Value) bool {
	_, obj := v.data.(fhir.Object)
	return !obj
}
