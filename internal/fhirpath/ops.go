package fhirpath

import (
	"math"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// logicNode is and, or, xor, implies with three-valued logic (FHIRPath
// §6.5): an empty operand is "unknown".
type logicNode struct {
	op   string
	l, r node
}

// tri is a three-valued boolean: -1 unknown (empty), 0 false, 1 true.
type tri int8

func (c *evalCtx) truth(n node, in []Value) (tri, error) {
	r, err := n.eval(c, in)
	if err != nil {
		return 0, err
	}
	return singletonBool(r)
}

// singletonBool applies the singleton evaluation of collections in a
// boolean context (FHIRPath §4.5): empty is unknown, one boolean is
// itself, one other item is true, several items are an error.
func singletonBool(r []Value) (tri, error) {
	switch len(r) {
	case 0:
		return -1, nil
	case 1:
		p, ok := prim(r[0])
		if b, isBool := p.(bool); ok && isBool {
			if b {
				return 1, nil
			}
			return 0, nil
		}
		return 1, nil
	}
	return 0, evalErr("expected a single boolean, found %d items", len(r))
}

func triResult(t tri) []Value {
	switch t {
	case 1:
		return trueV
	case 0:
		return falseV
	}
	return nil
}

func (n *logicNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	a, err := c.truth(n.l, in)
	if err != nil {
		return nil, err
	}
	// Short-circuit where the left side decides.
	switch {
	case n.op == "and" && a == 0:
		return falseV, nil
	case n.op == "or" && a == 1:
		return trueV, nil
	case n.op == "implies" && a == 0:
		return trueV, nil
	}
	b, err := c.truth(n.r, in)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "and":
		if b == 0 {
			return falseV, nil
		}
		if a == 1 && b == 1 {
			return trueV, nil
		}
	case "or":
		if b == 1 {
			return trueV, nil
		}
		if a == 0 && b == 0 {
			return falseV, nil
		}
	case "xor":
		if a >= 0 && b >= 0 {
			return boolResult(a != b), nil
		}
	case "implies":
		if b == 1 {
			return trueV, nil
		}
		if a == 1 && b == 0 {
			return falseV, nil
		}
	}
	return nil, nil
}

// binaryNode is every other binary operator.
type binaryNode struct {
	op   string
	l, r node
}

func (n *binaryNode) eval(c *evalCtx, in []Value) ([]Value, error) {
	a, err := n.l.eval(c, in)
	if err != nil {
		return nil, err
	}
	b, err := n.r.eval(c, in)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "|":
		return union(a, b), nil
	case "=", "!=":
		if len(a) == 0 || len(b) == 0 {
			return nil, nil
		}
		eq, known := collectionEqual(a, b)
		if !known {
			return nil, nil
		}
		return boolResult(eq == (n.op == "=")), nil
	case "~", "!~":
		return boolResult(collectionEquivalent(a, b) == (n.op == "~")), nil
	case "in", "contains":
		if n.op == "contains" {
			a, b = b, a
		}
		if len(a) == 0 {
			return nil, nil
		}
		if len(a) > 1 {
			return nil, evalErr("%s needs a single item, found %d", n.op, len(a))
		}
		return boolResult(containsValue(b, a[0])), nil
	case "&":
		if len(a) > 1 || len(b) > 1 {
			return nil, evalErr("& applied to several items")
		}
		var x, y string
		if len(a) == 1 {
			x, _ = toStringValue(a[0])
		}
		if len(b) == 1 {
			y, _ = toStringValue(b[0])
		}
		return []Value{sysString(x + y)}, nil
	}
	if len(a) == 0 || len(b) == 0 {
		return nil, nil
	}
	if len(a) > 1 || len(b) > 1 {
		return nil, evalErr("%s applied to a collection of several items", n.op)
	}
	switch n.op {
	case "<", ">", "<=", ">=":
		cmp, known, err := compareValues(a[0], b[0])
		if err != nil || !known {
			return nil, err
		}
		switch n.op {
		case "<":
			return boolResult(cmp < 0), nil
		case ">":
			return boolResult(cmp > 0), nil
		case "<=":
			return boolResult(cmp <= 0), nil
		default:
			return boolResult(cmp >= 0), nil
		}
	}
	return arithmetic(n.op, a[0], b[0])
}

// union merges two collections without duplicates (FHIRPath §6.5 |).
func union(a, b []Value) []Value {
	d := dedup{items: make([]Value, 0, len(a)+len(b))}
	for _, list := range [2][]Value{a, b} {
		for _, v := range list {
			d.add(v)
		}
	}
	return d.items
}

func containsValue(list []Value, v Value) bool {
	for _, w := range list {
		if eq, known := valueEqual(w, v); known && eq {
			return true
		}
	}
	return false
}

func collectionEqual(a, b []Value) (eq, known bool) {
	if len(a) != len(b) {
		return false, true
	}
	for i := range a {
		eq, known := valueEqual(a[i], b[i])
		if !known {
			return false, false
		}
		if !eq {
			return false, true
		}
	}
	return true, true
}

func collectionEquivalent(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	used := make([]bool, len(b))
outer:
	for _, x := range a {
		for j, y := range b {
			if !used[j] && valueEquivalent(x, y) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

// valueEqual is FHIRPath = on two items; known is false when the answer
// is empty (date/times of different precision, incommensurable units).
func valueEqual(a, b Value) (eq, known bool) {
	pa, oka := prim(a)
	pb, okb := prim(b)
	if !oka || !okb {
		if oka != okb {
			return false, true
		}
		return fhir.Equal(a.data, b.data), true
	}
	switch x := pa.(type) {
	case bool:
		y, ok := pb.(bool)
		return ok && x == y, true
	case string:
		y, ok := pb.(string)
		return ok && x == y, true
	case int64, decimal:
		fx, okx := numberOf(pa)
		fy, oky := numberOf(pb)
		if !okx || !oky {
			return false, true
		}
		if y, ok := pb.(int64); ok {
			if xi, ok := pa.(int64); ok {
				return xi == y, true
			}
		}
		return nearlyEqual(fx, fy), true
	case dateTime:
		y, ok := pb.(dateTime)
		if !ok {
			return false, true
		}
		cmp, known, comparable := compareDT(x, y)
		if !comparable {
			return false, true
		}
		return cmp == 0, known
	case quantity:
		y, ok := pb.(quantity)
		if !ok {
			return false, true
		}
		return quantityEqual(x, y, false)
	}
	return false, true
}

func numberOf(p any) (float64, bool) {
	switch x := p.(type) {
	case int64:
		return float64(x), true
	case decimal:
		return x.f, true
	}
	return 0, false
}

// valueEquivalent is FHIRPath ~ on two items (§6.1.3): strings ignore case
// and collapse whitespace, decimals compare at the lesser precision,
// date/times of different precision are not equivalent.
func valueEquivalent(a, b Value) bool {
	pa, oka := prim(a)
	pb, okb := prim(b)
	if !oka || !okb {
		if oka != okb {
			return false
		}
		return fhir.Equal(a.data, b.data)
	}
	switch x := pa.(type) {
	case string:
		y, ok := pb.(string)
		return ok && normalizeSpace(x) == normalizeSpace(y)
	case int64, decimal:
		dx, dy := decimalOf(pa), decimalOf(pb)
		if _, ok := numberOf(pb); !ok {
			return false
		}
		scale := min(dx.scale, dy.scale)
		if scale < 0 {
			scale = max(dx.scale, dy.scale)
		}
		if scale < 0 {
			scale = 8
		}
		return decimal{dx.f, scale}.round().f == decimal{dy.f, scale}.round().f
	case dateTime:
		y, ok := pb.(dateTime)
		if !ok {
			return false
		}
		cmp, known, comparable := compareDT(x, y)
		return comparable && known && cmp == 0
	case quantity:
		y, ok := pb.(quantity)
		if !ok {
			return false
		}
		eq, known := quantityEqual(x, y, true)
		return eq && known
	}
	eq, _ := valueEqual(a, b)
	return eq
}

func decimalOf(p any) decimal {
	switch x := p.(type) {
	case int64:
		return decimal{float64(x), 0}
	case decimal:
		return x
	}
	return decimal{}
}

func normalizeSpace(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// compareValues orders two items for < > <= >=.
func compareValues(a, b Value) (cmp int, known bool, err error) {
	pa, oka := prim(a)
	pb, okb := prim(b)
	if !oka || !okb {
		return 0, false, evalErr("cannot compare %s with %s", a.typ, b.typ)
	}
	switch x := pa.(type) {
	case int64, decimal:
		fx, _ := numberOf(x)
		fy, ok := numberOf(pb)
		if !ok {
			return 0, false, evalErr("cannot compare a number with %s", b.typ)
		}
		return cmpFloat(fx, fy), true, nil
	case string:
		y, ok := pb.(string)
		if !ok {
			return 0, false, evalErr("cannot compare a string with %s", b.typ)
		}
		return strings.Compare(x, y), true, nil
	case dateTime:
		y, ok := pb.(dateTime)
		if !ok {
			return 0, false, evalErr("cannot compare a date/time with %s", b.typ)
		}
		cmp, known, comparable := compareDT(x, y)
		if !comparable {
			return 0, false, evalErr("cannot compare a %s with a %s", a.typ, b.typ)
		}
		return cmp, known, nil
	case quantity:
		y, ok := pb.(quantity)
		if !ok {
			return 0, false, evalErr("cannot compare a quantity with %s", b.typ)
		}
		fx, fy, ok := convertPair(x, y)
		if !ok {
			return 0, false, nil
		}
		return cmpFloat(fx, fy), true, nil
	}
	return 0, false, evalErr("cannot compare %s values", a.typ)
}

func cmpFloat(x, y float64) int {
	switch {
	case nearlyEqual(x, y):
		return 0
	case x < y:
		return -1
	}
	return 1
}

// arithmetic applies + - * / div mod to two single items.
func arithmetic(op string, a, b Value) ([]Value, error) {
	pa, _ := prim(a)
	pb, _ := prim(b)
	switch x := pa.(type) {
	case string:
		if y, ok := pb.(string); ok && op == "+" {
			return []Value{sysString(x + y)}, nil
		}
	case int64:
		if y, ok := pb.(int64); ok {
			switch op {
			case "+":
				return []Value{sysInt(x + y)}, nil
			case "-":
				return []Value{sysInt(x - y)}, nil
			case "*":
				return []Value{sysInt(x * y)}, nil
			case "div":
				if y == 0 {
					return nil, nil
				}
				return []Value{sysInt(x / y)}, nil
			case "mod":
				if y == 0 {
					return nil, nil
				}
				return []Value{sysInt(x % y)}, nil
			}
		}
		if _, ok := numberOf(pb); ok {
			return decimalArith(op, decimalOf(x), decimalOf(pb))
		}
		if q, ok := pb.(quantity); ok && op == "*" {
			return quantityArith(op, quantity{decimalOf(x), "1"}, q)
		}
	case decimal:
		if _, ok := numberOf(pb); ok {
			return decimalArith(op, x, decimalOf(pb))
		}
		if q, ok := pb.(quantity); ok && op == "*" {
			return quantityArith(op, quantity{x, "1"}, q)
		}
	case dateTime:
		if q, ok := pb.(quantity); ok && (op == "+" || op == "-") {
			if op == "-" {
				q.value = q.value.neg()
			}
			d, err := addDuration(x, q.value, q.unit)
			if err != nil {
				return nil, err
			}
			return []Value{sysDateTime(d)}, nil
		}
	case quantity:
		switch y := pb.(type) {
		case quantity:
			return quantityArith(op, x, y)
		case int64, decimal:
			if op == "*" || op == "/" {
				return quantityArith(op, x, quantity{decimalOf(y), "1"})
			}
		}
	}
	return nil, evalErr("cannot apply %s to %s and %s", op, a.typ, b.typ)
}

func decimalArith(op string, x, y decimal) ([]Value, error) {
	var r decimal
	switch op {
	case "+":
		r = decimal{x.f + y.f, max(x.scale, y.scale)}
	case "-":
		r = decimal{x.f - y.f, max(x.scale, y.scale)}
	case "*":
		r = decimal{x.f * y.f, x.scale + y.scale}
		if x.scale < 0 || y.scale < 0 {
			r.scale = -1
		}
	case "/":
		if y.f == 0 {
			return nil, nil
		}
		r = decimal{x.f / y.f, -1}
	case "div":
		if y.f == 0 {
			return nil, nil
		}
		return []Value{sysInt(int64(math.Trunc(x.f / y.f)))}, nil
	case "mod":
		if y.f == 0 {
			return nil, nil
		}
		r = decimal{math.Mod(x.f, y.f), max(x.scale, y.scale)}
	default:
		return nil, evalErr("cannot apply %s to numbers", op)
	}
	return []Value{sysDecimal(r.round())}, nil
}

func quantityArith(op string, x, y quantity) ([]Value, error) {
	switch op {
	case "+", "-":
		fx, fy, ok := convertPair(x, y)
		if !ok {
			return nil, nil
		}
		r := decimal{fx + fy, max(x.value.scale, y.value.scale)}
		if op == "-" {
			r.f = fx - fy
		}
		return []Value{sysQuantity(quantity{r.round(), x.unit})}, nil
	case "*":
		d, _ := decimalArith("*", x.value, y.value)
		return []Value{sysQuantity(quantity{toDecimal(d[0]), combineUnits(x.unit, ".", y.unit)})}, nil
	case "/":
		d, _ := decimalArith("/", x.value, y.value)
		if len(d) == 0 {
			return nil, nil
		}
		return []Value{sysQuantity(quantity{toDecimal(d[0]), combineUnits(x.unit, "/", y.unit)})}, nil
	}
	return nil, evalErr("cannot apply %s to quantities", op)
}

func combineUnits(a, op, b string) string {
	a, _ = ucumCode(a)
	b, _ = ucumCode(b)
	switch {
	case b == "1":
		return a
	case a == "1" && op == ".":
		return b
	case a == b && op == "/":
		return "1"
	}
	if strings.ContainsAny(b, "./") {
		b = "(" + b + ")"
	}
	return a + op + b
}
