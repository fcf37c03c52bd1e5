package engine

import (
	"context"
	"encoding/json"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// Patch applies a JSON Patch (RFC 6902) to the current version of typ/id and
// stores the result as the next version, validated like an update. A patch
// document that is not valid JSON Patch is 400; one that cannot be applied
// to this resource (a failing test op, a path that is not there) is 422
// (RFC 5789 "unprocessable request"); a patch may not change the id or
// resourceType (400). If-Match is honoured.
func (e *Engine) Patch(ctx context.Context, typ, id string, patch []byte, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	return e.patch(ctx, typ, id, nil, patch, o)
}

// ConditionalPatch patches the one resource matching q: no match is 404,
// more than one 412.
func (e *Engine) ConditionalPatch(ctx context.Context, typ string, q url.Values, patch []byte, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if _, err := parseSearch(typ, q, true, true); err != nil {
		return nil, err
	}
	return e.patch(ctx, typ, "", q, patch, o)
}

func (e *Engine) patch(ctx context.Context, typ, id string, q url.Values, patch []byte, o WriteOptions) (*Outcome, error) {
	ifMatch, err := parseIfMatch(o.IfMatch)
	if err != nil {
		return nil, err
	}
	ops, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	lenient := o.Lenient || e.cfg.Lenient
	now := e.now()
	var out *Outcome
	err = e.write(ctx, func(tx store.Tx) error {
		out = nil
		target := id
		if q != nil {
			m, err := matchConditional(ctx, tx, typ, q)
			if err != nil {
				return err
			}
			switch len(m) {
			case 0:
				return fhir.Errorf(fhir.ENotFound, "", "no %s matches the conditional patch criteria", typ)
			case 1:
				target = m[0].ID
			default:
				return fhir.Errorf(fhir.EPreconditionFailed, "", "the conditional patch criteria match more than one %s", typ)
			}
		}
		var err error
		out, err = e.patchIn(ctx, tx, typ, target, ops, ifMatch, lenient, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Patched returns the resource the JSON Patch would make of a stored
// version's body, with the checks Patch makes (a patch that does not apply
// is 422; one that changes the id or resourceType is 400). Validation is
// left to the write that follows. The access layer uses it to decide a
// patch by its result before anything is written.
func Patched(typ, id string, body, patch []byte) (fhir.Object, error) {
	ops, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	doc, err := fhir.ParseObject(body, 0)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return patchResult(typ, id, doc, ops)
}

func patchResult(typ, id string, doc fhir.Object, ops []patchOp) (fhir.Object, error) {
	patched, err := applyPatch(doc, ops)
	if err != nil {
		return nil, err
	}
	res, ok := patched.(fhir.Object)
	if !ok {
		return nil, fhir.Errorf(fhir.EUnprocessable, "", "the patch does not leave a resource")
	}
	if rt, _ := res["resourceType"].(string); rt != typ {
		return nil, fhir.Invalid("", "a patch may not change the resourceType")
	}
	if rid, _ := res["id"].(string); rid != id {
		return nil, fhir.Invalid("", "a patch may not change the id")
	}
	return res, nil
}

// patchIn patches typ/id inside tx.
func (e *Engine) patchIn(ctx context.Context, tx store.Tx, typ, id string, ops []patchOp, ifMatch int64, lenient bool, now time.Time) (*Outcome, error) {
	cur, err := readForUpdate(ctx, tx, typ, id)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s not found", typ, id)
	}
	if err := checkIfMatch(ifMatch, cur, typ, id); err != nil {
		return nil, err
	}
	if cur.Deleted {
		return nil, gone(cur)
	}
	doc, err := fhir.ParseObject(cur.Body, 0)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	res, err := patchResult(typ, id, doc, ops)
	if err != nil {
		return nil, err
	}
	warnings, err := validate.Resource(res, validate.Options{Lenient: lenient})
	if err != nil {
		return nil, err
	}
	out, err := e.putResource(ctx, tx, typ, id, res, 0, now, false)
	if err != nil {
		return nil, err
	}
	out.Warnings = warnings
	return out, nil
}

// patchOp is one JSON Patch operation.
type patchOp struct {
	op    string
	path  []string // JSON Pointer tokens, unescaped
	from  []string
	value any
}

// parsePatch parses and checks a JSON Patch document.
func parsePatch(body []byte) ([]patchOp, error) {
	v, err := fhir.Parse(body, 0)
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fhir.Invalid("", "a JSON Patch document must be an array of operations")
	}
	ops := make([]patchOp, 0, len(list))
	for i, it := range list {
		at := "[" + strconv.Itoa(i) + "]"
		o, ok := it.(fhir.Object)
		if !ok {
			return nil, fhir.Invalid(at, "a JSON Patch operation must be an object")
		}
		var p patchOp
		p.op, _ = o["op"].(string)
		path, ok := o["path"].(string)
		if !ok {
			return nil, fhir.Invalid(at+".path", "the operation has no path")
		}
		if p.path, err = parsePointer(path, at+".path"); err != nil {
			return nil, err
		}
		switch p.op {
		case "add", "replace", "test":
			val, ok := o["value"]
			if !ok {
				return nil, fhir.Invalid(at+".value", "the %s operation needs a value", p.op)
			}
			p.value = val
		case "remove":
		case "move", "copy":
			from, ok := o["from"].(string)
			if !ok {
				return nil, fhir.Invalid(at+".from", "the %s operation needs from", p.op)
			}
			if p.from, err = parsePointer(from, at+".from"); err != nil {
				return nil, err
			}
			if p.op == "move" && isProperPrefix(p.from, p.path) {
				return nil, fhir.Invalid(at+".from", "a value cannot be moved into one of its own children")
			}
		default:
			return nil, fhir.Invalid(at+".op", "unknown JSON Patch operation %q", trunc(p.op))
		}
		ops = append(ops, p)
	}
	return ops, nil
}

// parsePointer parses a JSON Pointer (RFC 6901): "" is the whole document,
// otherwise "/"-separated tokens where ~1 is "/" and ~0 is "~".
func parsePointer(s, at string) ([]string, error) {
	if s == "" {
		return []string{}, nil
	}
	if s[0] != '/' {
		return nil, fhir.Invalid(at, "JSON Pointer %q must start with /", trunc(s))
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		if !strings.Contains(t, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '~' {
				b.WriteByte(t[j])
				continue
			}
			if j+1 >= len(t) || (t[j+1] != '0' && t[j+1] != '1') {
				return nil, fhir.Invalid(at, "JSON Pointer %q has an invalid ~ escape", trunc(s))
			}
			if t[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		toks[i] = b.String()
	}
	return toks, nil
}

func isProperPrefix(a, b []string) bool {
	if len(a) >= len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func pointerString(toks []string) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// applyPatch applies ops to doc in order and returns the result. Values
// taken from the patch are copied, so a retried transaction applies the
// same patch again to fresh data.
func applyPatch(doc any, ops []patchOp) (any, error) {
	var err error
	for i, p := range ops {
		switch p.op {
		case "add":
			doc, err = addAt(doc, p.path, fhir.Clone(p.value))
		case "remove":
			doc, _, err = removeAt(doc, p.path)
		case "replace":
			if _, err = getAt(doc, p.path); err == nil {
				if len(p.path) == 0 {
					doc = fhir.Clone(p.value)
				} else {
					doc, err = mutate(doc, p.path, func(c any, key string) (any, error) {
						return setIn(c, key, fhir.Clone(p.value), false)
					})
				}
			}
		case "move":
			var v any
			if doc, v, err = removeAt(doc, p.from); err == nil {
				doc, err = addAt(doc, p.path, v)
			}
		case "copy":
			var v any
			if v, err = getAt(doc, p.from); err == nil {
				doc, err = addAt(doc, p.path, fhir.Clone(v))
			}
		case "test":
			var v any
			if v, err = getAt(doc, p.path); err == nil && !jsonEqual(v, p.value) {
				err = fhir.Errorf(fhir.EUnprocessable, "", "JSON Patch test failed at %s", pointerString(p.path))
			}
		}
		if err != nil {
			if fe, ok := err.(*fhir.Error); ok && len(fe.Issues) > 0 {
				fe.Issues[0].Diagnostics = "patch operation " + strconv.Itoa(i) + " (" + p.op + "): " + fe.Issues[0].Diagnostics
			}
			return nil, err
		}
	}
	return doc, nil
}

func unprocessable(toks []string, format string, args ...any) error {
	return fhir.Errorf(fhir.EUnprocessable, "", "path %s: "+format, append([]any{pointerString(toks)}, args...)...)
}

func getAt(doc any, toks []string) (any, error) {
	cur := doc
	for i, t := range toks {
		switch c := cur.(type) {
		case fhir.Object:
			v, ok := c[t]
			if !ok {
				return nil, unprocessable(toks[:i+1], "no such element")
			}
			cur = v
		case []any:
			n, ok := arrayIndex(t, len(c)-1)
			if !ok {
				return nil, unprocessable(toks[:i+1], "no such array element")
			}
			cur = c[n]
		default:
			return nil, unprocessable(toks[:i+1], "not inside an object or array")
		}
	}
	return cur, nil
}

// mutate walks to the container of the last token and replaces it by what f
// returns, rebuilding the chain of parents (arrays change identity when
// they grow or shrink).
func mutate(node any, toks []string, f func(container any, key string) (any, error)) (any, error) {
	if len(toks) == 1 {
		return f(node, toks[0])
	}
	switch c := node.(type) {
	case fhir.Object:
		child, ok := c[toks[0]]
		if !ok {
			return nil, unprocessable(toks[:1], "no such element")
		}
		nc, err := mutate(child, toks[1:], f)
		if err != nil {
			return nil, err
		}
		c[toks[0]] = nc
		return c, nil
	case []any:
		n, ok := arrayIndex(toks[0], len(c)-1)
		if !ok {
			return nil, unprocessable(toks[:1], "no such array element")
		}
		nc, err := mutate(c[n], toks[1:], f)
		if err != nil {
			return nil, err
		}
		c[n] = nc
		return c, nil
	default:
		return nil, unprocessable(toks[:1], "not inside an object or array")
	}
}

func addAt(doc any, toks []string, v any) (any, error) {
	if len(toks) == 0 {
		return v, nil
	}
	return mutate(doc, toks, func(c any, key string) (any, error) { return setIn(c, key, v, true) })
}

// setIn sets key in container c: for add into an array it inserts (or
// appends with "-"), otherwise it replaces an existing member.
func setIn(c any, key string, v any, add bool) (any, error) {
	switch c := c.(type) {
	case fhir.Object:
		if _, ok := c[key]; !ok && !add {
			return nil, unprocessable([]string{key}, "no such element to replace")
		}
		c[key] = v
		return c, nil
	case []any:
		if add {
			if key == "-" {
				return append(c, v), nil
			}
			n, ok := arrayIndex(key, len(c))
			if !ok {
				return nil, unprocessable([]string{key}, "array index out of range")
			}
			c = append(c, nil)
			copy(c[n+1:], c[n:])
			c[n] = v
			return c, nil
		}
		n, ok := arrayIndex(key, len(c)-1)
		if !ok {
			return nil, unprocessable([]string{key}, "array index out of range")
		}
		c[n] = v
		return c, nil
	default:
		return nil, unprocessable([]string{key}, "not inside an object or array")
	}
}

func removeAt(doc any, toks []string) (any, any, error) {
	if len(toks) == 0 {
		return nil, nil, fhir.Errorf(fhir.EUnprocessable, "", "the whole resource cannot be removed")
	}
	var removed any
	doc, err := mutate(doc, toks, func(c any, key string) (any, error) {
		switch c := c.(type) {
		case fhir.Object:
			v, ok := c[key]
			if !ok {
				return nil, unprocessable(toks, "no such element to remove")
			}
			removed = v
			delete(c, key)
			return c, nil
		case []any:
			n, ok := arrayIndex(key, len(c)-1)
			if !ok {
				return nil, unprocessable(toks, "no such array element to remove")
			}
			removed = c[n]
			return append(c[:n:n], c[n+1:]...), nil
		default:
			return nil, unprocessable(toks, "not inside an object or array")
		}
	})
	return doc, removed, err
}

// arrayIndex parses an RFC 6901 array index (digits, no leading zero) no
// greater than maxIndex.
func arrayIndex(t string, maxIndex int) (int, bool) {
	if t == "" || len(t) > 9 || (len(t) > 1 && t[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, false
		}
		n = n*10 + int(t[i]-'0')
	}
	return n, n <= maxIndex
}

// jsonEqual is JSON equality as RFC 6902 "test" defines it: numbers compare
// by value, objects by members regardless of order.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, ok1 := new(big.Float).SetString(string(x))
		fy, ok2 := new(big.Float).SetString(string(y))
		return ok1 && ok2 && fx.Cmp(fy) == 0
	case fhir.Object:
		y, ok := b.(fhir.Object)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}
