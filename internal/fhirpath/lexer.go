package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// tokKind is the lexical class of a token.
type tokKind uint8

const (
	tEOF      tokKind = iota
	tIdent            // identifier or keyword (and, or, is, true, ...)
	tDelim            // `delimited identifier`
	tString           // 'string'
	tNumber           // 12 or 1.5
	tDate             // @2015-02-04 (text without @)
	tDateTime         // @2015-02-04T14:34
	tTime             // @T14:34 (text without @T)
	tOp               // punctuation and operators
	tSpecial          // $this, $index, $total
	tConst            // %name or %`name` or %'name'
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// lex splits an expression into tokens. Comments (// and /* */) are
// skipped; an unterminated block comment or string is a syntax error.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f':
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, syntaxErr(i, "unterminated comment")
			}
			i += end + 4
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case c == '`':
			s, n, err := quoted(src, i, '`')
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tDelim, s, i})
			i += n
		case c == '\'':
			s, n, err := quoted(src, i, '\'')
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tString, s, i})
			i += n
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			// A '.' is part of the number only when a digit follows:
			// 1.convertsToInteger() is an invocation on 1.
			if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
				j++
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			toks = append(toks, token{tNumber, src[i:j], i})
			i = j
		case c == '@':
			t, n, err := lexDate(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += n
		case c == '$':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			name := src[i:j]
			if name != "$this" && name != "$index" && name != "$total" {
				return nil, syntaxErr(i, "unknown special variable %q", name)
			}
			toks = append(toks, token{tSpecial, name, i})
			i = j
		case c == '%':
			j := i + 1
			switch {
			case j < len(src) && (src[j] == '`' || src[j] == '\''):
				s, n, err := quoted(src, j, src[j])
				if err != nil {
					return nil, err
				}
				toks = append(toks, token{tConst, s, i})
				i = j + n
			case j < len(src) && isIdentStart(src[j]):
				for j < len(src) && isIdentPart(src[j]) {
					j++
				}
				// FHIR's %vs-name and %ext-name constants contain '-';
				// elsewhere '-' is subtraction (%a-1).
				if name := src[i+1 : j]; (name == "vs" || name == "ext") && j < len(src) && src[j] == '-' {
					for j < len(src) && (isIdentPart(src[j]) || src[j] == '-' || src[j] == '.') {
						j++
					}
				}
				toks = append(toks, token{tConst, src[i+1 : j], i})
				i = j
			default:
				return nil, syntaxErr(i, "bad external constant")
			}
		default:
			op := ""
			for _, o := range [...]string{"<=", ">=", "!=", "!~", ".", "[", "]", "(", ")", "{", "}", ",", "+", "-", "*", "/", "&", "|", "<", ">", "=", "~"} {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, syntaxErr(i, "unexpected character %q", r)
			}
			toks = append(toks, token{tOp, op, i})
			i += len(op)
		}
	}
	toks = append(toks, token{tEOF, "", len(src)})
	return toks, nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// quoted reads a quoted string or delimited identifier starting at src[i]
// (the quote q), decoding the FHIRPath escapes, and returns it and the
// number of bytes consumed.
func quoted(src string, i int, q byte) (string, int, error) {
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		c := src[j]
		if c == q {
			return b.String(), j + 1 - i, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(src) {
			break
		}
		e := src[j+1]
		j += 2
		switch e {
		case '\'', '"', '`', '\\', '/':
			b.WriteByte(e)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if j+4 > len(src) {
				return "", 0, syntaxErr(j, "bad unicode escape")
			}
			n, err := strconv.ParseUint(src[j:j+4], 16, 32)
			if err != nil {
				return "", 0, syntaxErr(j, "bad unicode escape")
			}
			b.WriteRune(rune(n))
			j += 4
		default:
			return "", 0, syntaxErr(j-2, "unknown escape \\%c", e)
		}
	}
	return "", 0, syntaxErr(i, "unterminated %c", q)
}

// lexDate reads a date, dateTime or time literal starting at src[i] ('@').
func lexDate(src string, i int) (token, int, error) {
	j := i + 1
	if j < len(src) && src[j] == 'T' {
		k := j + 1
		for k < len(src) && (isDigit(src[k]) || src[k] == ':' || src[k] == '.') {
			if src[k] == '.' && (k+1 >= len(src) || !isDigit(src[k+1])) {
				break
			}
			k++
		}
		// A time literal has no time zone: @T14:34:28Z is an error.
		if k < len(src) && (src[k] == 'Z' || src[k] == '+' || (src[k] == '-' && k+1 < len(src) && isDigit(src[k+1]))) {
			return token{}, 0, syntaxErr(i, "a time literal cannot have a time zone")
		}
		return token{tTime, src[j+1 : k], i}, k - i, nil
	}
	k := j
	for k < len(src) && (isDigit(src[k]) || src[k] == '-') {
		k++
	}
	if k >= len(src) || src[k] != 'T' {
		return token{tDate, src[j:k], i}, k - i, nil
	}
	k++ // T
	for k < len(src) && (isDigit(src[k]) || src[k] == ':' || src[k] == '.') {
		// '.' only when followed by a digit (milliseconds), not an invocation.
		if src[k] == '.' && (k+1 >= len(src) || !isDigit(src[k+1])) {
			break
		}
		k++
	}
	if k < len(src) && src[k] == 'Z' {
		k++
	} else if k < len(src) && (src[k] == '+' || src[k] == '-') && k+1 < len(src) && isDigit(src[k+1]) {
		k++
		for k < len(src) && (isDigit(src[k]) || src[k] == ':') {
			k++
		}
	}
	return token{tDateTime, src[j:k], i}, k - i, nil
}

// syntaxErr reports an expression that does not parse: the caller's
// mistake, so EInvalid.
func syntaxErr(pos int, format string, args ...any) error {
	return fhir.Errorf(fhir.EInvalid, "", "FHIRPath syntax error at offset %d: %s", pos, fmt.Sprintf(format, args...))
}

// evalErr reports an expression that cannot be evaluated over the data
// (single() over several items, a string where a number must be, ...).
func evalErr(format string, args ...any) error {
	return fhir.Errorf(fhir.EUnprocessable, "", "FHIRPath evaluation error: %s", fmt.Sprintf(format, args...))
}
