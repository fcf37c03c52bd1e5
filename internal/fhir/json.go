package fhir

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Object is a JSON object as parsed by Parse: values are Object, []any,
// string, json.Number, bool or nil. Numbers stay json.Number so that FHIR
// decimals keep their precision ("1.50" is not "1.5").
type Object = map[string]any

// DefaultMaxDepth bounds nesting in Parse. The deepest R4 structures seen in
// practice (nested Questionnaire items, contained Bundles) stay well below it;
// anything deeper is treated as an attack on the stack.
const DefaultMaxDepth = 100

// Parse decodes one JSON value under FHIR's rules for JSON: strict RFC 8259
// syntax, valid UTF-8, no duplicate object keys (FHIR forbids them and
// decoders disagree on which one wins), nesting no deeper than maxDepth (or
// DefaultMaxDepth when zero) and nothing after the value. Errors are EInvalid
// with the element path and the byte offset.
func Parse(data []byte, maxDepth int) (any, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	p := parser{data: data, maxDepth: maxDepth}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.data) {
		return nil, p.fail("unexpected data after the JSON value")
	}
	return v, nil
}

// ParseObject parses data and requires the top-level value to be an object.
func ParseObject(data []byte, maxDepth int) (Object, error) {
	v, err := Parse(data, maxDepth)
	if err != nil {
		return nil, err
	}
	o, ok := v.(Object)
	if !ok {
		return nil, Invalid("", "the body must be a JSON object")
	}
	return o, nil
}

type parser struct {
	data     []byte
	pos      int
	maxDepth int
	path     []string // element path of the value being parsed, for messages
}

func (p *parser) location() string {
	var b []byte
	for _, s := range p.path {
		if len(s) > 0 && s[0] == '[' {
			b = append(b, s...)
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, s...)
	}
	return string(b)
}

func (p *parser) fail(format string, args ...any) error {
	e := Invalid(p.location(), format, args...)
	e.Issues[0].Code = "structure"
	line, col := 1, 1
	for _, c := range p.data[:min(p.pos, len(p.data))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	e.Issues[0].Diagnostics += " (line " + strconv.Itoa(line) + ", column " + strconv.Itoa(col) + ")"
	return e
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of JSON")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.fail("unexpected character %q", rune(c))
	}
}

func (p *parser) literal(s string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(s)) {
		return p.fail("invalid literal")
	}
	p.pos += len(s)
	return nil
}

func (p *parser) object(depth int) (any, error) {
	if depth > p.maxDepth {
		return nil, p.fail("JSON nesting deeper than %d levels", p.maxDepth)
	}
	p.pos++ // {
	obj := make(Object)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("expected a property name")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		if _, dup := obj[key]; dup {
			p.path = append(p.path, key)
			return nil, p.fail("duplicate property %q", key)
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("expected ':' after property name")
		}
		p.pos++
		p.skipSpace()
		p.path = append(p.path, key)
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.path = p.path[:len(p.path)-1]
		obj[key] = v
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of JSON in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return obj, nil
		default:
			return nil, p.fail("expected ',' or '}' in object")
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	if depth > p.maxDepth {
		return nil, p.fail("JSON nesting deeper than %d levels", p.maxDepth)
	}
	p.pos++ // [
	arr := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for i := 0; ; i++ {
		p.skipSpace()
		p.path = append(p.path, "["+strconv.Itoa(i)+"]")
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.path = p.path[:len(p.path)-1]
		arr = append(arr, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of JSON in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return arr, nil
		default:
			return nil, p.fail("expected ',' or ']' in array")
		}
	}
}

func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			raw := p.data[start:p.pos]
			if !utf8.Valid(raw) {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.pos++
			return string(raw), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.fail("control character in string")
		}
		p.pos++
	}
	buf := append([]byte(nil), p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.data) {
			break
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					p.pos += 2
					r2, ok := p.hex4()
					if !ok {
						return "", p.fail("invalid \\u escape")
					}
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
				if r == utf8.RuneError {
					return "", p.fail("unpaired UTF-16 surrogate in string")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("invalid escape \\%c", e)
		}
	}
	return "", p.fail("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

func (p *parser) number() (any, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if n := digits(); n == 0 {
		return nil, p.fail("invalid number")
	} else if n > 1 && p.data[intStart] == '0' {
		return nil, p.fail("invalid number: leading zero")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	return json.Number(p.data[start:p.pos]), nil
}

// Marshal encodes v (a value of the kinds Parse returns, or anything
// encoding/json accepts) compactly. In objects "resourceType", "id" and "meta"
// come first, as FHIR's own examples have them, then the other keys in sorted
// order, so the same resource always encodes to the same bytes.
func Marshal(v any) []byte {
	var e encoder
	e.value(v)
	return e.buf
}

// MarshalIndent encodes v like Marshal but indented by two spaces.
func MarshalIndent(v any) []byte {
	e := encoder{indent: true}
	e.value(v)
	return e.buf
}

// AppendMarshal appends the compact encoding of v to dst.
func AppendMarshal(dst []byte, v any) []byte {
	e := encoder{buf: dst}
	e.value(v)
	return e.buf
}

type encoder struct {
	buf    []byte
	indent bool
	depth  int
}

func (e *encoder) newline() {
	if e.indent {
		e.buf = append(e.buf, '\n')
		for range e.depth {
			e.buf = append(e.buf, ' ', ' ')
		}
	}
}

var leadingKeys = [...]string{"resourceType", "id", "meta"}

func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case string:
		e.buf = appendString(e.buf, x)
	case json.Number:
		if x == "" {
			e.buf = append(e.buf, '0')
		} else {
			e.buf = append(e.buf, x...)
		}
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case float64:
		e.buf = strconv.AppendFloat(e.buf, x, 'f', -1, 64)
	case Object:
		if len(x) == 0 {
			e.buf = append(e.buf, "{}"...)
			return
		}
		e.buf = append(e.buf, '{')
		e.depth++
		first := true
		emit := func(k string, val any) {
			if !first {
				e.buf = append(e.buf, ',')
			}
			first = false
			e.newline()
			e.buf = appendString(e.buf, k)
			e.buf = append(e.buf, ':')
			if e.indent {
				e.buf = append(e.buf, ' ')
			}
			e.value(val)
		}
		var keys []string
		for k := range x {
			if k != "resourceType" && k != "id" && k != "meta" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range leadingKeys {
			if val, ok := x[k]; ok {
				emit(k, val)
			}
		}
		for _, k := range keys {
			emit(k, x[k])
		}
		e.depth--
		e.newline()
		e.buf = append(e.buf, '}')
	case []any:
		if len(x) == 0 {
			e.buf = append(e.buf, "[]"...)
			return
		}
		e.buf = append(e.buf, '[')
		e.depth++
		for i, val := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.newline()
			e.value(val)
		}
		e.depth--
		e.newline()
		e.buf = append(e.buf, ']')
	case []Object:
		arr := make([]any, len(x))
		for i := range x {
			arr[i] = x[i]
		}
		e.value(arr)
	case []string:
		arr := make([]any, len(x))
		for i := range x {
			arr[i] = x[i]
		}
		e.value(arr)
	case json.RawMessage:
		e.buf = append(e.buf, x...)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			e.buf = append(e.buf, "null"...)
			return
		}
		e.buf = append(e.buf, b...)
	}
}

const hexDigits = "0123456789abcdef"

func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
