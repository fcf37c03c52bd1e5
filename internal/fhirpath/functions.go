package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// funcDef is a function: its arity and implementation. Arguments arrive
// unevaluated so that where/select/... can evaluate them per item.
type funcDef struct {
	min, max int
	fn       func(c *evalCtx, in []Value, args []node) ([]Value, error)
}

var functions map[string]*funcDef

func init() {
	functions = map[string]*funcDef{
		// existence
		"empty":      {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) { return boolResult(len(in) == 0), nil }},
		"exists":     {0, 1, fnExists},
		"all":        {1, 1, fnAll},
		"allTrue":    {0, 0, boolsFn(func(n, t, f int) bool { return t == n })},
		"anyTrue":    {0, 0, boolsFn(func(n, t, f int) bool { return t > 0 })},
		"allFalse":   {0, 0, boolsFn(func(n, t, f int) bool { return f == n })},
		"anyFalse":   {0, 0, boolsFn(func(n, t, f int) bool { return f > 0 })},
		"subsetOf":   {1, 1, fnSubset(false)},
		"supersetOf": {1, 1, fnSubset(true)},
		"count":      {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) { return []Value{sysInt(int64(len(in)))}, nil }},
		"distinct":   {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) { return union(in, nil), nil }},
		"isDistinct": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			return boolResult(len(union(in, nil)) == len(in)), nil
		}},
		// filtering and projection
		"where":  {1, 1, fnWhere},
		"select": {1, 1, fnSelect},
		"repeat": {1, 1, fnRepeat},
		// subsetting
		"single": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			if len(in) > 1 {
				return nil, evalErr("single() on %d items", len(in))
			}
			return in, nil
		}},
		"first": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			if len(in) == 0 {
				return nil, nil
			}
			return in[:1:1], nil
		}},
		"last": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			if len(in) == 0 {
				return nil, nil
			}
			return in[len(in)-1:], nil
		}},
		"tail": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			if len(in) <= 1 {
				return nil, nil
			}
			return in[1:], nil
		}},
		"skip":      {1, 1, fnSkipTake(true)},
		"take":      {1, 1, fnSkipTake(false)},
		"intersect": {1, 1, fnIntersect(true)},
		"exclude":   {1, 1, fnIntersect(false)},
		// combining
		"union": {1, 1, func(c *evalCtx, in []Value, args []node) ([]Value, error) {
			b, err := c.arg(args[0])
			return union(in, b), err
		}},
		"combine": {1, 1, func(c *evalCtx, in []Value, args []node) ([]Value, error) {
			b, err := c.arg(args[0])
			return append(append([]Value(nil), in...), b...), err
		}},
		// conversion
		"iif":                {2, 3, fnIif},
		"toBoolean":          {0, 0, convFn(convBoolean, false)},
		"convertsToBoolean":  {0, 0, convFn(convBoolean, true)},
		"toInteger":          {0, 0, convFn(convInteger, false)},
		"convertsToInteger":  {0, 0, convFn(convInteger, true)},
		"toDecimal":          {0, 0, convFn(convDecimal, false)},
		"convertsToDecimal":  {0, 0, convFn(convDecimal, true)},
		"toString":           {0, 0, convFn(convString, false)},
		"convertsToString":   {0, 0, convFn(convString, true)},
		"toDate":             {0, 0, convFn(convDT(kDate), false)},
		"convertsToDate":     {0, 0, convFn(convDT(kDate), true)},
		"toDateTime":         {0, 0, convFn(convDT(kDateTime), false)},
		"convertsToDateTime": {0, 0, convFn(convDT(kDateTime), true)},
		"toTime":             {0, 0, convFn(convDT(kTime), false)},
		"convertsToTime":     {0, 0, convFn(convDT(kTime), true)},
		"toQuantity":         {0, 1, fnToQuantity(false)},
		"convertsToQuantity": {0, 1, fnToQuantity(true)},
		// strings
		"indexOf": {1, 1, strFn(1, func(s string, a []Value) ([]Value, error) {
			sub, _ := a[0].data.(string)
			i := strings.Index(s, sub)
			if i > 0 {
				i = utf8.RuneCountInString(s[:i])
			}
			return []Value{sysInt(int64(i))}, nil
		})},
		"substring": {1, 2, fnSubstring},
		"startsWith": {1, 1, strFn(1, func(s string, a []Value) ([]Value, error) {
			return boolResult(strings.HasPrefix(s, a[0].data.(string))), nil
		})},
		"endsWith": {1, 1, strFn(1, func(s string, a []Value) ([]Value, error) {
			return boolResult(strings.HasSuffix(s, a[0].data.(string))), nil
		})},
		"contains": {1, 1, strFn(1, func(s string, a []Value) ([]Value, error) {
			return boolResult(strings.Contains(s, a[0].data.(string))), nil
		})},
		"upper": {0, 0, strFn(0, func(s string, _ []Value) ([]Value, error) { return []Value{sysString(strings.ToUpper(s))}, nil })},
		"lower": {0, 0, strFn(0, func(s string, _ []Value) ([]Value, error) { return []Value{sysString(strings.ToLower(s))}, nil })},
		"replace": {2, 2, strFn(2, func(s string, a []Value) ([]Value, error) {
			return []Value{sysString(strings.ReplaceAll(s, a[0].data.(string), a[1].data.(string)))}, nil
		})},
		"matches":        {1, 1, strFn(1, regexFn(false))},
		"matchesFull":    {1, 1, strFn(1, regexFn(true))},
		"replaceMatches": {2, 2, strFn(2, fnReplaceMatches)},
		"length": {0, 0, strFn(0, func(s string, _ []Value) ([]Value, error) {
			return []Value{sysInt(int64(utf8.RuneCountInString(s)))}, nil
		})},
		"toChars": {0, 0, strFn(0, func(s string, _ []Value) ([]Value, error) {
			var out []Value
			for _, r := range s {
				out = append(out, sysString(string(r)))
			}
			return out, nil
		})},
		"trim": {0, 0, strFn(0, func(s string, _ []Value) ([]Value, error) { return []Value{sysString(strings.TrimSpace(s))}, nil })},
		"split": {1, 1, strFn(1, func(s string, a []Value) ([]Value, error) {
			var out []Value
			for _, p := range strings.Split(s, a[0].data.(string)) {
				out = append(out, sysString(p))
			}
			return out, nil
		})},
		"join":     {0, 1, fnJoin},
		"encode":   {1, 1, strFn(1, fnEncode)},
		"decode":   {1, 1, strFn(1, fnDecode)},
		"escape":   {1, 1, strFn(1, fnEscape)},
		"unescape": {1, 1, strFn(1, fnUnescape)},
		// math
		"abs":      {0, 0, mathFn(math.Abs, true)},
		"ceiling":  {0, 0, intMathFn(math.Ceil)},
		"floor":    {0, 0, intMathFn(math.Floor)},
		"truncate": {0, 0, intMathFn(math.Trunc)},
		"exp":      {0, 0, mathFn(math.Exp, false)},
		"ln":       {0, 0, mathFn(math.Log, false)},
		"sqrt":     {0, 0, mathFn(math.Sqrt, false)},
		"log":      {1, 1, fnLog},
		"power":    {1, 1, fnPower},
		"round":    {0, 1, fnRound},
		// tree navigation
		"children":    {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) { return childrenOf(in), nil }},
		"descendants": {0, 0, fnDescendants},
		// utility
		"trace": {1, 2, fnTrace},
		"now": {0, 0, func(c *evalCtx, _ []Value, _ []node) ([]Value, error) {
			return []Value{sysDateTime(nowDT(c.now()))}, nil
		}},
		"today":     {0, 0, fnToday},
		"timeOfDay": {0, 0, fnTimeOfDay},
		"aggregate": {1, 2, fnAggregate},
		"sort":      {0, 9, fnSort},
		"not": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			t, err := singletonBool(in)
			if err != nil || t < 0 {
				return nil, err
			}
			return boolResult(t == 0), nil
		}},
		"type": {0, 0, fnType},
		// FHIR additions (FHIR R4 §2.1.9.1.2)
		"extension":  {1, 1, fnExtension},
		"resolve":    {0, 0, fnResolve},
		"hasValue":   {0, 0, fnHasValue},
		"getValue":   {0, 0, fnGetValue},
		"htmlChecks": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) { return trueV, nil }},
		"conformsTo": {1, 1, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			return nil, evalErr("conformsTo() needs profiles, which this engine does not load")
		}},
		"memberOf":   {1, 1, needsTerminology("memberOf")},
		"subsumes":   {1, 1, needsTerminology("subsumes")},
		"subsumedBy": {1, 1, needsTerminology("subsumedBy")},
		"elementDefinition": {0, 0, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			return nil, evalErr("elementDefinition() is not supported")
		}},
		"slice": {2, 2, func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
			return nil, evalErr("slice() needs profiles, which this engine does not load")
		}},
	}
	addBoundaryFunctions()
}

func needsTerminology(name string) funcDefFn {
	return func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
		return nil, evalErr("%s() needs a terminology server", name)
	}
}

type funcDefFn = func(c *evalCtx, in []Value, args []node) ([]Value, error)

func fnExists(c *evalCtx, in []Value, args []node) ([]Value, error) {
	if len(args) == 0 {
		return boolResult(len(in) > 0), nil
	}
	found := false
	err := c.iterate(in, args[0], func(_ int, r []Value) (bool, error) {
		t, err := singletonBool(r)
		if t == 1 {
			found = true
			return false, nil
		}
		return true, err
	})
	return boolResult(found), err
}

func fnAll(c *evalCtx, in []Value, args []node) ([]Value, error) {
	all := true
	err := c.iterate(in, args[0], func(_ int, r []Value) (bool, error) {
		t, err := singletonBool(r)
		if t != 1 {
			all = false
			return false, err
		}
		return true, err
	})
	return boolResult(all), err
}

func boolsFn(pred func(n, t, f int) bool) funcDefFn {
	return func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
		t, f := 0, 0
		for _, v := range in {
			b, ok := v.data.(bool)
			if !ok {
				return nil, evalErr("expected booleans, found %s", v.typ)
			}
			if b {
				t++
			} else {
				f++
			}
		}
		return boolResult(pred(len(in), t, f)), nil
	}
}

func fnSubset(super bool) funcDefFn {
	return func(c *evalCtx, in []Value, args []node) ([]Value, error) {
		other, err := c.arg(args[0])
		if err != nil {
			return nil, err
		}
		a, b := in, other
		if super {
			a, b = other, in
		}
		for _, v := range a {
			if !containsValue(b, v) {
				return falseV, nil
			}
		}
		return trueV, nil
	}
}

func fnWhere(c *evalCtx, in []Value, args []node) ([]Value, error) {
	var out []Value
	err := c.iterate(in, args[0], func(i int, r []Value) (bool, error) {
		t, err := singletonBool(r)
		if t == 1 {
			out = append(out, in[i])
		}
		return true, err
	})
	return out, err
}

func fnSelect(c *evalCtx, in []Value, args []node) ([]Value, error) {
	var out []Value
	err := c.iterate(in, args[0], func(_ int, r []Value) (bool, error) {
		out = append(out, r...)
		return true, nil
	})
	return out, err
}

func fnRepeat(c *evalCtx, in []Value, args []node) ([]Value, error) {
	var d dedup
	queue := in
	for len(queue) > 0 {
		var next []Value
		err := c.iterate(queue, args[0], func(_ int, r []Value) (bool, error) {
			for _, v := range r {
				if d.add(v) {
					next = append(next, v)
				}
			}
			if len(d.items) > maxRepeat {
				return false, evalErr("repeat() produced more than %d items", maxRepeat)
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		queue = next
	}
	return d.items, nil
}

// maxRepeat bounds repeat(): an expression such as repeat($this + 1) never
// ends on its own.
const maxRepeat = 10000

func intArg(c *evalCtx, n node) (int64, bool, error) {
	r, err := c.arg(n)
	if err != nil || len(r) == 0 {
		return 0, false, err
	}
	p, _ := prim(r[0])
	i, ok := p.(int64)
	if !ok || len(r) > 1 {
		return 0, false, evalErr("expected an integer argument")
	}
	return i, true, nil
}

func fnSkipTake(skip bool) funcDefFn {
	return func(c *evalCtx, in []Value, args []node) ([]Value, error) {
		n, ok, err := intArg(c, args[0])
		if err != nil || !ok {
			return nil, err
		}
		n = max(0, min(n, int64(len(in))))
		if skip {
			return in[n:], nil
		}
		return in[:n:n], nil
	}
}

func fnIntersect(keep bool) funcDefFn {
	return func(c *evalCtx, in []Value, args []node) ([]Value, error) {
		other, err := c.arg(args[0])
		if err != nil {
			return nil, err
		}
		var out []Value
		for _, v := range in {
			if containsValue(other, v) == keep && (!keep || !containsValue(out, v)) {
				out = append(out, v)
			}
		}
		return out, nil
	}
}

func fnIif(c *evalCtx, in []Value, args []node) ([]Value, error) {
	if len(in) > 1 {
		return nil, evalErr("iif() on %d items", len(in))
	}
	save := c.this
	defer func() { c.this = save }()
	if len(in) == 1 {
		c.this = in
	}
	crit, err := c.arg(args[0])
	if err != nil {
		return nil, err
	}
	if len(crit) == 1 {
		if _, ok := prim(crit[0]); !ok {
			return nil, evalErr("iif() criterion is not a boolean")
		}
		if p, _ := prim(crit[0]); p != nil {
			if _, isBool := p.(bool); !isBool {
				return nil, evalErr("iif() criterion is not a boolean")
			}
		}
	}
	t, err := singletonBool(crit)
	if err != nil {
		return nil, err
	}
	if t == 1 {
		return c.arg(args[1])
	}
	if len(args) == 3 {
		return c.arg(args[2])
	}
	return nil, nil
}

// convFn builds toX() (check false) and convertsToX() (check true) from
// one conversion of a single item.
func convFn(conv func(Value) (Value, bool), check bool) funcDefFn {
	return func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, evalErr("conversion of %d items", len(in))
		}
		v, ok := conv(in[0])
		if check {
			return boolResult(ok), nil
		}
		if !ok {
			return nil, nil
		}
		return []Value{v}, nil
	}
}

func convBoolean(v Value) (Value, bool) {
	p, _ := prim(v)
	switch x := p.(type) {
	case bool:
		return sysBool(x), true
	case int64:
		if x == 0 || x == 1 {
			return sysBool(x == 1), true
		}
	case decimal:
		if x.f == 0 || x.f == 1 {
			return sysBool(x.f == 1), true
		}
	case string:
		switch strings.ToLower(x) {
		case "true", "t", "yes", "y", "1", "1.0":
			return sysBool(true), true
		case "false", "f", "no", "n", "0", "0.0":
			return sysBool(false), true
		}
	}
	return Value{}, false
}

var integerRe = regexp.MustCompile(`^[+-]?[0-9]+$`)
var decimalRe = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)

func convInteger(v Value) (Value, bool) {
	p, _ := prim(v)
	switch x := p.(type) {
	case int64:
		return sysInt(x), true
	case bool:
		if x {
			return sysInt(1), true
		}
		return sysInt(0), true
	case string:
		if integerRe.MatchString(x) {
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return sysInt(n), true
			}
		}
	}
	return Value{}, false
}

func convDecimal(v Value) (Value, bool) {
	p, _ := prim(v)
	switch x := p.(type) {
	case int64:
		return sysDecimal(decimal{float64(x), 0}), true
	case decimal:
		return sysDecimal(x), true
	case bool:
		if x {
			return sysDecimal(decimal{1, 1}), true
		}
		return sysDecimal(decimal{0, 1}), true
	case string:
		if decimalRe.MatchString(x) {
			if d, ok := parseDecimal(x); ok {
				return sysDecimal(d), true
			}
		}
	}
	return Value{}, false
}

func convString(v Value) (Value, bool) {
	s, ok := toStringValue(v)
	if !ok {
		return Value{}, false
	}
	return sysString(s), true
}

func convDT(kind dtKind) func(Value) (Value, bool) {
	return func(v Value) (Value, bool) {
		p, _ := prim(v)
		switch x := p.(type) {
		case dateTime:
			switch {
			case x.kind == kind:
				return sysDateTime(x), true
			case kind == kDateTime && x.kind == kDate:
				x.kind = kDateTime
				return sysDateTime(x), true
			case kind == kDate && x.kind == kDateTime:
				x.kind = kDate
				x.prec = min(x.prec, pDay)
				x.hour, x.minute, x.sec, x.ms, x.hasTZ, x.tz = 0, 0, 0, 0, false, 0
				return sysDateTime(x), true
			}
		case string:
			if d, ok := parseDateTime(x, kind); ok {
				return sysDateTime(d), true
			}
			if kind == kDateTime {
				if d, ok := parseDateTime(x, kDate); ok {
					d.kind = kDateTime
					return sysDateTime(d), true
				}
			}
		}
		return Value{}, false
	}
}

var quantityRe = regexp.MustCompile(`^([+-]?[0-9]+(?:\.[0-9]+)?)\s*(?:'([^']+)'|([a-zA-Z]+))?$`)

func convQuantity(v Value) (quantity, bool) {
	p, _ := prim(v)
	switch x := p.(type) {
	case quantity:
		return x, true
	case int64:
		return quantity{decimal{float64(x), 0}, "1"}, true
	case decimal:
		return quantity{x, "1"}, true
	case bool:
		if x {
			return quantity{decimal{1, 1}, "1"}, true
		}
		return quantity{decimal{0, 1}, "1"}, true
	case string:
		m := quantityRe.FindStringSubmatch(strings.TrimSpace(x))
		if m == nil {
			return quantity{}, false
		}
		d, _ := parseDecimal(m[1])
		unit := m[2]
		if m[3] != "" {
			cu, ok := calendarUnits[m[3]]
			if !ok {
				return quantity{}, false
			}
			unit = cu
		}
		if unit == "" {
			unit = "1"
		}
		return quantity{d, unit}, true
	}
	return quantity{}, false
}

func fnToQuantity(check bool) funcDefFn {
	return func(c *evalCtx, in []Value, args []node) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, evalErr("conversion of %d items", len(in))
		}
		q, ok := convQuantity(in[0])
		if ok && len(args) == 1 {
			target, err := c.arg(args[0])
			if err != nil {
				return nil, err
			}
			unit := ""
			if len(target) == 1 {
				unit, _ = target[0].data.(string)
			}
			fx, fy, conv := convertPair(quantity{decimal{1, 0}, unit}, q)
			if !conv || unit == "" {
				ok = false
			} else {
				q = quantity{decimal{fy / fx, -1}.round(), unit}
			}
		}
		if check {
			return boolResult(ok), nil
		}
		if !ok {
			return nil, nil
		}
		return []Value{sysQuantity(q)}, nil
	}
}

// strFn wraps a string function: the input must be one string (empty
// gives empty) and each of the nargs arguments one string (empty gives
// empty).
func strFn(nargs int, f func(s string, args []Value) ([]Value, error)) funcDefFn {
	return func(c *evalCtx, in []Value, args []node) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, evalErr("string function on %d items", len(in))
		}
		p, _ := prim(in[0])
		s, ok := p.(string)
		if !ok {
			return nil, evalErr("string function on %s", in[0].typ)
		}
		vals := make([]Value, nargs)
		for i := 0; i < nargs; i++ {
			r, err := c.arg(args[i])
			if err != nil || len(r) == 0 {
				return nil, err
			}
			p, _ := prim(r[0])
			str, ok := p.(string)
			if !ok || len(r) > 1 {
				return nil, evalErr("expected a string argument")
			}
			vals[i] = sysString(str)
		}
		return f(s, vals)
	}
}

// regexCache keeps compiled patterns: invariants call matches() with the
// same literal pattern on every validation. Patterns built from data
// could grow it without bound, so it stops growing at maxRegexCache.
var (
	regexCache   sync.Map // pattern -> *regexp.Regexp
	regexEntries atomic.Int64
)

const maxRegexCache = 1000

func compileRegex(pattern string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, evalErr("bad regular expression: %v", err)
	}
	if regexEntries.Add(1) <= maxRegexCache {
		regexCache.Store(pattern, re)
	}
	return re, nil
}

func regexFn(full bool) func(s string, a []Value) ([]Value, error) {
	return func(s string, a []Value) ([]Value, error) {
		p := a[0].data.(string)
		if full {
			p = "^(?:" + p + ")$"
		}
		re, err := compileRegex("(?s)" + p)
		if err != nil {
			return nil, err
		}
		return boolResult(re.MatchString(s)), nil
	}
}

func fnReplaceMatches(s string, a []Value) ([]Value, error) {
	p := a[0].data.(string)
	if p == "" {
		return []Value{sysString(s)}, nil
	}
	re, err := compileRegex(p)
	if err != nil {
		return nil, err
	}
	// FHIRPath uses $1 for groups, as Go's Expand does.
	return []Value{sysString(re.ReplaceAllString(s, a[1].data.(string)))}, nil
}

func fnSubstring(c *evalCtx, in []Value, args []node) ([]Value, error) {
	if len(in) == 0 {
		return nil, nil
	}
	p, _ := prim(in[0])
	s, ok := p.(string)
	if !ok || len(in) > 1 {
		return nil, evalErr("substring() needs one string")
	}
	start, ok, err := intArg(c, args[0])
	if err != nil || !ok {
		return nil, err
	}
	runes := []rune(s)
	if start < 0 || start >= int64(len(runes)) {
		return nil, nil
	}
	end := int64(len(runes))
	if len(args) == 2 {
		n, ok, err := intArg(c, args[1])
		if err != nil {
			return nil, err
		}
		if ok {
			end = min(end, start+max(n, 0))
		}
	}
	return []Value{sysString(string(runes[start:end]))}, nil
}

func fnJoin(c *evalCtx, in []Value, args []node) ([]Value, error) {
	sep := ""
	if len(args) == 1 {
		r, err := c.arg(args[0])
		if err != nil {
			return nil, err
		}
		if len(r) == 1 {
			sep, _ = toStringValue(r[0])
		}
	}
	parts := make([]string, 0, len(in))
	for _, v := range in {
		s, ok := toStringValue(v)
		if !ok {
			return nil, evalErr("join() on %s", v.typ)
		}
		parts = append(parts, s)
	}
	return []Value{sysString(strings.Join(parts, sep))}, nil
}

func fnEncode(s string, a []Value) ([]Value, error) {
	switch a[0].data.(string) {
	case "base64":
		return []Value{sysString(base64.StdEncoding.EncodeToString([]byte(s)))}, nil
	case "urlbase64":
		return []Value{sysString(base64.URLEncoding.EncodeToString([]byte(s)))}, nil
	case "hex":
		return []Value{sysString(hex.EncodeToString([]byte(s)))}, nil
	}
	return nil, nil
}

func fnDecode(s string, a []Value) ([]Value, error) {
	var b []byte
	var err error
	switch a[0].data.(string) {
	case "base64":
		b, err = base64.StdEncoding.DecodeString(s)
	case "urlbase64":
		b, err = base64.URLEncoding.DecodeString(s)
	case "hex":
		b, err = hex.DecodeString(s)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, nil
	}
	return []Value{sysString(string(b))}, nil
}

func fnEscape(s string, a []Value) ([]Value, error) {
	switch a[0].data.(string) {
	case "html":
		return []Value{sysString(htmlEscaper.Replace(s))}, nil
	case "json":
		return []Value{sysString(jsonEscaper.Replace(s))}, nil
	}
	return nil, nil
}

var (
	htmlEscaper   = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")
	jsonEscaper   = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	jsonUnescaper = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n", `\r`, "\r", `\t`, "\t", `\/`, "/")
)

func fnUnescape(s string, a []Value) ([]Value, error) {
	switch a[0].data.(string) {
	case "html":
		return []Value{sysString(html.UnescapeString(s))}, nil
	case "json":
		var out string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &out); err != nil {
			out = jsonUnescaper.Replace(s)
		}
		return []Value{sysString(out)}, nil
	}
	return nil, nil
}

// numberIn reads the single number a math function applies to.
func numberIn(in []Value) (any, bool, error) {
	if len(in) == 0 {
		return nil, false, nil
	}
	if len(in) > 1 {
		return nil, false, evalErr("math function on %d items", len(in))
	}
	p, _ := prim(in[0])
	switch p.(type) {
	case int64, decimal, quantity:
		return p, true, nil
	}
	return nil, false, evalErr("math function on %s", in[0].typ)
}

func mathFn(f func(float64) float64, keepType bool) funcDefFn {
	return func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
		p, ok, err := numberIn(in)
		if err != nil || !ok {
			return nil, err
		}
		switch x := p.(type) {
		case int64:
			if keepType {
				return []Value{sysInt(int64(f(float64(x))))}, nil
			}
			return decimalResult(f(float64(x)))
		case decimal:
			if keepType {
				return []Value{sysDecimal(decimal{f(x.f), x.scale})}, nil
			}
			return decimalResult(f(x.f))
		case quantity:
			if keepType {
				x.value.f = f(x.value.f)
				return []Value{sysQuantity(x)}, nil
			}
		}
		return nil, evalErr("math function on a quantity")
	}
}

func decimalResult(f float64) ([]Value, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil
	}
	return []Value{sysDecimal(decimal{f, -1}.round())}, nil
}

func intMathFn(f func(float64) float64) funcDefFn {
	return func(c *evalCtx, in []Value, _ []node) ([]Value, error) {
		p, ok, err := numberIn(in)
		if err != nil || !ok {
			return nil, err
		}
		x, _ := numberOf(p)
		return []Value{sysInt(int64(f(x)))}, nil
	}
}

func numArg(c *evalCtx, n node) (float64, bool, error) {
	r, err := c.arg(n)
	if err != nil || len(r) == 0 {
		return 0, false, err
	}
	p, _ := prim(r[0])
	f, ok := numberOf(p)
	if !ok {
		return 0, false, evalErr("expected a number argument")
	}
	return f, true, nil
}

func fnLog(c *evalCtx, in []Value, args []node) ([]Value, error) {
	p, ok, err := numberIn(in)
	if err != nil || !ok {
		return nil, err
	}
	base, ok, err := numArg(c, args[0])
	if err != nil || !ok {
		return nil, err
	}
	x, _ := numberOf(p)
	return decimalResult(math.Log(x) / math.Log(base))
}

func fnPower(c *evalCtx, in []Value, args []node) ([]Value, error) {
	p, ok, err := numberIn(in)
	if err != nil || !ok {
		return nil, err
	}
	e, ok, err := numArg(c, args[0])
	if err != nil || !ok {
		return nil, err
	}
	x, _ := numberOf(p)
	r := math.Pow(x, e)
	if math.IsNaN(r) {
		return nil, nil
	}
	if _, isInt := p.(int64); isInt && e == math.Trunc(e) && e >= 0 {
		if ra, _ := c.arg(args[0]); len(ra) == 1 {
			if _, argInt := ra[0].data.(int64); argInt {
				return []Value{sysInt(int64(r))}, nil
			}
		}
	}
	return decimalResult(r)
}

func fnRound(c *evalCtx, in []Value, args []node) ([]Value, error) {
	p, ok, err := numberIn(in)
	if err != nil || !ok {
		return nil, err
	}
	digits := 0.0
	if len(args) == 1 {
		d, ok, err := numArg(c, args[0])
		if err != nil || !ok {
			return nil, err
		}
		if d < 0 {
			return nil, evalErr("round() precision must not be negative")
		}
		digits = d
	}
	x, _ := numberOf(p)
	pow := math.Pow10(int(digits))
	r := math.Round(x*pow) / pow
	return []Value{sysDecimal(decimal{r, int(digits)})}, nil
}

// childrenOf returns every child node of every item, in JSON order of the
// model's elements where known.
func childrenOf(in []Value) []Value {
	var out []Value
	for _, v := range in {
		obj, ok := v.data.(fhir.Object)
		if !ok {
			continue
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			if k != "resourceType" && !strings.HasPrefix(k, "_") {
				keys = append(keys, k)
			}
		}
		for k := range obj {
			if strings.HasPrefix(k, "_") {
				if _, ok := obj[k[1:]]; !ok {
					keys = append(keys, k[1:])
				}
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			var cd candidate
			if v.def != nil {
				if el, tc, ok := v.def.Child(v.path, k); ok {
					cd = candidateFor(v.def, el, tc)
					cd.key, cd.extKey = k, "_"+k
				}
			}
			if cd.key == "" {
				out = appendUntyped(out, obj, k)
				continue
			}
			out = appendRaw(out, obj[k], obj["_"+k], &cd)
		}
	}
	return out
}

func fnDescendants(c *evalCtx, in []Value, _ []node) ([]Value, error) {
	var out []Value
	level := childrenOf(in)
	for len(level) > 0 && len(out) < maxRepeat*10 {
		out = append(out, level...)
		level = childrenOf(level)
	}
	return out, nil
}

func fnTrace(c *evalCtx, in []Value, args []node) ([]Value, error) {
	name, err := c.arg(args[0])
	if err != nil {
		return nil, err
	}
	if c.opts.trace != nil {
		label := ""
		if len(name) == 1 {
			label, _ = toStringValue(name[0])
		}
		shown := in
		if len(args) == 2 {
			var sel []Value
			if err := c.iterate(in, args[1], func(_ int, r []Value) (bool, error) {
				sel = append(sel, r...)
				return true, nil
			}); err != nil {
				return nil, err
			}
			shown = sel
		}
		c.opts.trace(label, shown)
	}
	return in, nil
}

func fnToday(c *evalCtx, _ []Value, _ []node) ([]Value, error) {
	d := nowDT(c.now())
	return []Value{sysDateTime(dateTime{kind: kDate, prec: pDay, year: d.year, month: d.month, day: d.day})}, nil
}

func fnTimeOfDay(c *evalCtx, _ []Value, _ []node) ([]Value, error) {
	d := nowDT(c.now())
	d.kind, d.year, d.month, d.day, d.hasTZ, d.tz = kTime, 0, 0, 0, false, 0
	return []Value{sysDateTime(d)}, nil
}

func fnAggregate(c *evalCtx, in []Value, args []node) ([]Value, error) {
	saveTotal := c.total
	defer func() { c.total = saveTotal }()
	c.total = nil
	if len(args) == 2 {
		init, err := c.arg(args[1])
		if err != nil {
			return nil, err
		}
		c.total = init
	}
	err := c.iterate(in, args[0], func(_ int, r []Value) (bool, error) {
		c.total = r
		return true, nil
	})
	return c.total, err
}

func fnSort(c *evalCtx, in []Value, args []node) ([]Value, error) {
	out := append([]Value(nil), in...)
	if len(args) == 0 {
		var sortErr error
		sort.SliceStable(out, func(i, j int) bool {
			cmp, _, err := compareValues(out[i], out[j])
			if err != nil {
				sortErr = err
			}
			return cmp < 0
		})
		return out, sortErr
	}
	keys := make([][][]Value, len(args))
	desc := make([]bool, len(args))
	for k, a := range args {
		// sort(-key) sorts by key descending, for strings too.
		if u, ok := a.(*unaryNode); ok && u.neg {
			a, desc[k] = u.x, true
		}
		keys[k] = make([][]Value, len(out))
		if err := c.iterate(out, a, func(i int, r []Value) (bool, error) {
			keys[k][i] = r
			return true, nil
		}); err != nil {
			return nil, err
		}
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	var sortErr error
	sort.SliceStable(idx, func(x, y int) bool {
		for k := range args {
			a, b := keys[k][idx[x]], keys[k][idx[y]]
			if len(a) == 0 || len(b) == 0 {
				if len(a) != len(b) {
					return len(a) == 0
				}
				continue
			}
			cmp, _, err := compareValues(a[0], b[0])
			if err != nil {
				sortErr = err
			}
			if cmp != 0 {
				return (cmp < 0) != desc[k]
			}
		}
		return false
	})
	sorted := make([]Value, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted, sortErr
}

func fnType(c *evalCtx, in []Value, _ []node) ([]Value, error) {
	out := make([]Value, 0, len(in))
	for _, v := range in {
		ns := "FHIR"
		if v.sys {
			ns = "System"
		}
		out = append(out, Value{data: fhir.Object{"namespace": ns, "name": v.typ}, typ: "TypeInfo"})
	}
	return out, nil
}

func fnExtension(c *evalCtx, in []Value, args []node) ([]Value, error) {
	r, err := c.arg(args[0])
	if err != nil || len(r) == 0 {
		return nil, err
	}
	url, _ := toStringValue(r[0])
	ext := r4.Lookup("Extension")
	var out []Value
	for _, v := range in {
		for _, e := range v.Extensions() {
			o, ok := e.(fhir.Object)
			if ok && o["url"] == url {
				out = append(out, Value{data: o, def: ext, typ: "Extension"})
			}
		}
	}
	return out, nil
}

// fnResolve implements resolve(). With a resolver option it returns the
// referenced resources; without one, contained ("#id") references and
// Bundle entries (by fullUrl) resolve within %resource, and any other
// relative or absolute "Type/id" reference resolves to a stand-in node
// that knows only its type and id: enough for the
// where(resolve() is Patient) patterns of search parameters.
func fnResolve(c *evalCtx, in []Value, _ []node) ([]Value, error) {
	var out []Value
	for _, v := range in {
		var ref string
		switch d := v.data.(type) {
		case fhir.Object:
			ref, _ = d["reference"].(string)
		case string:
			ref = d
		}
		if ref == "" {
			continue
		}
		if c.opts.resolver != nil {
			if r := c.opts.resolver(ref); r != nil {
				out = append(out, resourceValue(r))
			}
			continue
		}
		if r := c.resolveLocal(ref); r != nil {
			out = append(out, resourceValue(r))
			continue
		}
		if typ, id, ok := splitReference(ref); ok {
			_ = id
			out = append(out, Value{data: fhir.Object(nil), def: r4.Lookup(typ), typ: typ})
		}
	}
	return out, nil
}

// resolveLocal finds a contained resource or a Bundle entry.
func (c *evalCtx) resolveLocal(ref string) fhir.Object {
	if len(c.resource) == 0 {
		return nil
	}
	root, _ := c.resource[0].data.(fhir.Object)
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		for _, x := range asList(root["contained"]) {
			if o, ok := x.(fhir.Object); ok && o["id"] == id {
				return o
			}
		}
		return nil
	}
	if root["resourceType"] == "Bundle" {
		for _, x := range asList(root["entry"]) {
			e, _ := x.(fhir.Object)
			full, _ := e["fullUrl"].(string)
			r, _ := e["resource"].(fhir.Object)
			if r == nil {
				continue
			}
			if full == ref || (full != "" && strings.HasSuffix(full, "/"+ref)) {
				return r
			}
		}
	}
	return nil
}

func asList(x any) []any {
	if l, ok := x.([]any); ok {
		return l
	}
	if x == nil {
		return nil
	}
	return []any{x}
}

// splitReference reads "Type/id", "Type/id/_history/v" or an absolute URL
// ending so; ok is false for anything else (urn:uuid:, #id, canonicals of
// non-resources).
func splitReference(ref string) (typ, id string, ok bool) {
	parts := strings.Split(ref, "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	if n < 2 {
		return "", "", false
	}
	typ, id = parts[n-2], strings.SplitN(parts[n-1], "|", 2)[0]
	if !r4.IsResource(typ) || id == "" {
		return "", "", false
	}
	return typ, id, true
}

func fnHasValue(c *evalCtx, in []Value, _ []node) ([]Value, error) {
	if len(in) != 1 {
		return falseV, nil
	}
	v := in[0]
	return boolResult(!v.sys && v.data != nil && isPrimitiveNode(v)), nil
}

func fnGetValue(c *evalCtx, in []Value, _ []node) ([]Value, error) {
	if len(in) != 1 || in[0].data == nil || !isPrimitiveNode(in[0]) {
		return nil, nil
	}
	p, ok := prim(in[0])
	if !ok {
		return nil, nil
	}
	switch x := p.(type) {
	case bool:
		return []Value{sysBool(x)}, nil
	case int64:
		return []Value{sysInt(x)}, nil
	case decimal:
		return []Value{sysDecimal(x)}, nil
	case string:
		return []Value{sysString(x)}, nil
	case dateTime:
		return []Value{sysDateTime(x)}, nil
	}
	return nil, nil
}
