package fhirpath

import (
	"strings"
)

// node is one compiled expression: it evaluates over an input collection
// (the focus: the result of the expression to its left, or $this at the
// start of a path).
type node interface {
	eval(c *evalCtx, in []Value) ([]Value, error)
}

// Binding powers of the binary operators, loosest first (FHIRPath §9
// Operator precedence, read bottom-up).
var binaryPower = map[string]int{
	"implies": 1,
	"or":      2, "xor": 2,
	"and": 3,
	"in":  4, "contains": 4,
	"=": 5, "~": 5, "!=": 5, "!~": 5,
	"<": 6, ">": 6, "<=": 6, ">=": 6,
	"|":  7,
	"is": 8, "as": 8,
	"+": 9, "-": 9, "&": 9,
	"*": 10, "/": 10, "div": 10, "mod": 10,
}

const unaryPower = 11

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isOp(s string) bool {
	t := p.toks[p.i]
	return t.kind == tOp && t.text == s
}

func (p *parser) expect(s string) error {
	if !p.isOp(s) {
		t := p.peek()
		return syntaxErr(t.pos, "expected %q, found %q", s, t.text)
	}
	p.i++
	return nil
}

// parse parses a whole expression.
func parse(src string) (node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, syntaxErr(t.pos, "unexpected %q", t.text)
	}
	return n, nil
}

// binaryOp returns the operator at the current token, if it is one.
func (p *parser) binaryOp() (string, int) {
	t := p.peek()
	switch t.kind {
	case tOp:
		if bp, ok := binaryPower[t.text]; ok {
			return t.text, bp
		}
	case tIdent:
		if bp, ok := binaryPower[t.text]; ok {
			return t.text, bp
		}
	}
	return "", -1
}

// expr parses an expression whose operators bind tighter than min.
func (p *parser) expr(min int) (node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, bp := p.binaryOp()
		if bp <= min {
			return left, nil
		}
		p.next()
		if op == "is" || op == "as" {
			ns, name, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeOpNode{op: op, x: left, spec: typeSpec{ns, name}}
			continue
		}
		// implies is right-associative; all others are left-associative.
		rmin := bp
		if op == "implies" {
			rmin = bp - 1
		}
		right, err := p.expr(rmin)
		if err != nil {
			return nil, err
		}
		left, err = newBinary(op, left, right)
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) typeSpecifier() (ns, name string, err error) {
	t := p.next()
	if t.kind != tIdent && t.kind != tDelim {
		return "", "", syntaxErr(t.pos, "expected a type name, found %q", t.text)
	}
	name = t.text
	if p.isOp(".") {
		p.next()
		t2 := p.next()
		if t2.kind != tIdent && t2.kind != tDelim {
			return "", "", syntaxErr(t2.pos, "expected a type name, found %q", t2.text)
		}
		return name, t2.text, nil
	}
	return "", name, nil
}

func (p *parser) unary() (node, error) {
	if p.isOp("+") || p.isOp("-") {
		op := p.next().text
		x, err := p.expr(unaryPower)
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return &unaryNode{neg: false, x: x}, nil
		}
		// Fold negative numeric literals so that -1 is a literal.
		if l, ok := x.(*literalNode); ok && len(l.v) == 1 {
			switch d := l.v[0].data.(type) {
			case int64:
				return &literalNode{v: []Value{sysInt(-d)}}, nil
			case decimal:
				return &literalNode{v: []Value{sysDecimal(d.neg())}}, nil
			}
		}
		return &unaryNode{neg: true, x: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.next()
			inv, err := p.invocation(false)
			if err != nil {
				return nil, err
			}
			n = &chainNode{left: n, right: inv}
		case p.isOp("["):
			p.next()
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = &indexerNode{x: n, index: idx}
		default:
			return n, nil
		}
	}
}

var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

func (p *parser) term() (node, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		num, err := parseNumber(t.text)
		if err != nil {
			return nil, syntaxErr(t.pos, "bad number %q", t.text)
		}
		// A number followed by a unit is a quantity literal.
		if u := p.peek(); u.kind == tString {
			p.next()
			return &literalNode{v: []Value{sysQuantity(quantity{toDecimal(num), u.text})}}, nil
		} else if u.kind == tIdent {
			if cu, ok := calendarUnits[u.text]; ok {
				p.next()
				return &literalNode{v: []Value{sysQuantity(quantity{toDecimal(num), cu})}}, nil
			}
		}
		return &literalNode{v: []Value{num}}, nil
	case tString:
		p.next()
		return &literalNode{v: []Value{sysString(t.text)}}, nil
	case tDate, tDateTime, tTime:
		p.next()
		var kind dtKind
		switch t.kind {
		case tDate:
			kind = kDate
		case tDateTime:
			kind = kDateTime
		default:
			kind = kTime
		}
		d, ok := parseDateTime(t.text, kind)
		if !ok {
			return nil, syntaxErr(t.pos, "bad date/time literal")
		}
		return &literalNode{v: []Value{sysDateTime(d)}}, nil
	case tConst:
		p.next()
		return &constNode{name: t.text}, nil
	case tSpecial:
		p.next()
		return &specialNode{name: t.text}, nil
	case tOp:
		switch t.text {
		case "(":
			p.next()
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			return n, nil
		case "{":
			p.next()
			if err := p.expect("}"); err != nil {
				return nil, err
			}
			return &literalNode{}, nil
		}
	case tIdent:
		switch t.text {
		case "true", "false":
			if p.toks[p.i+1].kind != tOp || p.toks[p.i+1].text != "(" {
				p.next()
				return &literalNode{v: []Value{sysBool(t.text == "true")}}, nil
			}
		}
		return p.invocation(true)
	case tDelim:
		return p.invocation(true)
	}
	return nil, syntaxErr(t.pos, "unexpected %q", t.text)
}

// invocation parses an identifier, a function call or a special variable;
// first says it starts a path (so a type name there selects the context).
func (p *parser) invocation(first bool) (node, error) {
	t := p.next()
	switch t.kind {
	case tSpecial:
		return &specialNode{name: t.text}, nil
	case tDelim:
		return &memberNode{name: t.text, first: first}, nil
	case tIdent:
	default:
		return nil, syntaxErr(t.pos, "expected an identifier, found %q", t.text)
	}
	if !p.isOp("(") {
		return &memberNode{name: t.text, first: first}, nil
	}
	p.next()
	var args []node
	if !p.isOp(")") {
		for {
			a, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.isOp(",") {
				p.next()
				continue
			}
			break
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	return newCall(t, args)
}

// newCall binds a function call to its implementation, checking arity at
// compile time so that a misspelt function fails before any data is seen.
func newCall(t token, args []node) (node, error) {
	switch t.text {
	case "is", "as", "ofType":
		if len(args) != 1 {
			return nil, syntaxErr(t.pos, "%s() takes one type argument", t.text)
		}
		spec, ok := typeSpecOf(args[0])
		if !ok {
			return nil, syntaxErr(t.pos, "%s() takes a type name", t.text)
		}
		return &typeFuncNode{name: t.text, spec: spec}, nil
	}
	f, ok := functions[t.text]
	if !ok {
		return nil, syntaxErr(t.pos, "unknown function %s()", t.text)
	}
	if len(args) < f.min || len(args) > f.max {
		return nil, syntaxErr(t.pos, "%s() takes %d to %d arguments, not %d", t.text, f.min, f.max, len(args))
	}
	return &callNode{name: t.text, f: f, args: args}, nil
}

// typeSpecOf reads a type name written as a function argument: Quantity,
// FHIR.Quantity, System.String, `Patient`.
func typeSpecOf(n node) (typeSpec, bool) {
	switch n := n.(type) {
	case *memberNode:
		return typeSpec{"", n.name}, true
	case *chainNode:
		l, ok1 := n.left.(*memberNode)
		r, ok2 := n.right.(*memberNode)
		if ok1 && ok2 {
			return typeSpec{l.name, r.name}, true
		}
	}
	return typeSpec{}, false
}

// typeSpec is a type name with its optional namespace (FHIR or System).
type typeSpec struct{ ns, name string }

func (s typeSpec) String() string {
	if s.ns == "" {
		return s.name
	}
	return s.ns + "." + s.name
}

func newBinary(op string, l, r node) (node, error) {
	switch op {
	case "and", "or", "xor", "implies":
		return &logicNode{op: op, l: l, r: r}, nil
	}
	return &binaryNode{op: op, l: l, r: r}, nil
}

// parseNumber reads an integer or decimal literal.
func parseNumber(s string) (Value, error) {
	if !strings.Contains(s, ".") {
		if n, err := parseInt(s); err == nil {
			return sysInt(n), nil
		}
	}
	d, ok := parseDecimal(s)
	if !ok {
		return Value{}, evalErr("bad number %q", s)
	}
	return sysDecimal(d), nil
}
