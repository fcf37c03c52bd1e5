// Package fhirpath is the FHIRPath engine (FHIRPath 2.0.0, the normative
// release used by FHIR R4) over parsed FHIR JSON (fhir.Object), typed by
// the generated R4 model in internal/fhir/r4.
//
// Search indexing evaluates every search parameter's expression on every
// write, and validation evaluates invariants, so an expression is compiled
// once (Compile) into a tree that evaluates without re-parsing or
// reflection; navigation caches the model lookups per node.
//
// Results are collections of Value: a node of the resource that knows its
// FHIR type (HumanName, Period, dateTime, Quantity, ...) and its JSON, or
// a System value computed by the expression. resolve() does not fetch
// anything unless given a Resolver: it resolves contained resources and
// Bundle entries locally and otherwise returns a stand-in that only knows
// the target's type, which is what search parameters such as
// Observation.subject.where(resolve() is Patient) need.
//
// Decisions where FHIRPath and R4 pull apart, or where the engine is
// simpler than the specification allows:
//   - the as operator over a collection filters it like ofType(), because
//     R4's search parameters are written that way ("(Observation.component.value
//     as Quantity)"); the as() function keeps the single-item rule;
//   - a choice element spelt with its type (Observation.valueQuantity) is
//     an evaluation error, as FHIRPath requires;
//   - Decimal is a float64 carrying the scale it was written with (about
//     15 significant digits, results rounded to their scale so that
//     0.1 + 0.2 = 0.3), not the 28 digits the specification allows:
//     ample for clinical values, and no allocation per number;
//   - Quantity comparison converts between the UCUM units of a small
//     table (mass, length, volume, time, amount, %); other units compare
//     only with themselves;
//   - paths are not type-checked before evaluation: an unknown element
//     name gives an empty collection, or with WithStrict an error when a
//     node of a known type is navigated.
//
// Not supported: memberOf, subsumes and subsumedBy (they need a
// terminology server), conformsTo and slice (they need profiles).
package fhirpath

import (
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Expression is a compiled FHIRPath expression, safe for concurrent use.
type Expression struct {
	src  string
	root node
}

// Compile parses expr. Errors are *fhir.Error of kind EInvalid naming the
// offset of the problem; unknown functions and wrong argument counts are
// caught here, before any data is seen.
func Compile(expr string) (e *Expression, err error) {
	defer func() {
		// The parser is recursive over untrusted text; a pathological
		// expression must fail, not crash the server.
		if r := recover(); r != nil {
			e, err = nil, syntaxErr(0, "expression too complex")
		}
	}()
	if len(expr) > 1<<16 {
		return nil, syntaxErr(0, "expression longer than 64KiB")
	}
	root, err := parse(expr)
	if err != nil {
		return nil, err
	}
	return &Expression{src: expr, root: root}, nil
}

// MustCompile is Compile for expressions written in the source code; it
// panics on an error.
func MustCompile(expr string) *Expression {
	e, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return e
}

// String returns the expression's source text.
func (e *Expression) String() string { return e.src }

// Option adjusts one evaluation.
type Option func(*options)

type options struct {
	vars     map[string][]Value
	now      time.Time
	resolver func(ref string) fhir.Object
	trace    func(name string, values []Value)
	strict   bool
}

// WithVariable binds %name to a value: a fhir.Object, string, bool,
// int, int64, float64 or a []Value.
func WithVariable(name string, value any) Option {
	return func(o *options) {
		if o.vars == nil {
			o.vars = map[string][]Value{}
		}
		o.vars[name] = valuesOf(value)
	}
}

// WithNow fixes the time now(), today() and timeOfDay() return.
func WithNow(t time.Time) Option { return func(o *options) { o.now = t } }

// WithResolver makes resolve() fetch references (as written in the
// resource: "Patient/1", "#c1", absolute URLs); a nil result drops the
// reference.
func WithResolver(r func(ref string) fhir.Object) Option {
	return func(o *options) { o.resolver = r }
}

// WithTrace receives the output of trace() calls.
func WithTrace(f func(name string, values []Value)) Option {
	return func(o *options) { o.trace = f }
}

// WithStrict makes navigation to an element the model does not define
// (name.given1), and a path that names another type than the context's
// (Encounter.status on a Patient), errors rather than empty collections:
// for checking an expression written for one type. Search parameters
// shared by several types (AllergyIntolerance.code | Condition.code) must
// not be evaluated so.
func WithStrict() Option { return func(o *options) { o.strict = true } }

// Evaluate evaluates the expression with resource as the context (and
// %resource, %context). resource may be nil for expressions that do not
// look at one. The result may share memory with the resource and with the
// expression's constants: treat it as read-only.
func (e *Expression) Evaluate(resource fhir.Object, opts ...Option) ([]Value, error) {
	c := &evalCtx{}
	if resource != nil {
		c.rootBuf[0] = resourceValue(resource)
		c.resource = c.rootBuf[:]
	}
	return e.eval(c, c.resource, opts)
}

// EvaluateOn evaluates the expression with focus as the context (and
// %context) and resource as %resource: the components of a composite search parameter
// are evaluated so, on each node the parameter's expression selected.
func (e *Expression) EvaluateOn(resource fhir.Object, focus Value, opts ...Option) ([]Value, error) {
	c := &evalCtx{}
	if resource != nil {
		c.rootBuf[0] = resourceValue(resource)
		c.resource = c.rootBuf[:]
	}
	return e.eval(c, []Value{focus}, opts)
}

func (e *Expression) eval(c *evalCtx, in []Value, opts []Option) (out []Value, err error) {
	c.this, c.context = in, in
	for _, o := range opts {
		o(&c.opts)
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, evalErr("internal failure evaluating %q: %v", e.src, r)
		}
	}()
	return e.root.eval(c, in)
}

// valuesOf turns a Go value into a collection for WithVariable.
func valuesOf(x any) []Value {
	switch v := x.(type) {
	case nil:
		return nil
	case []Value:
		return v
	case Value:
		return []Value{v}
	case fhir.Object:
		if _, ok := v["resourceType"]; ok {
			return []Value{resourceValue(v)}
		}
		return []Value{{data: v}}
	case string:
		return []Value{sysString(v)}
	case bool:
		return []Value{sysBool(v)}
	case int:
		return []Value{sysInt(int64(v))}
	case int64:
		return []Value{sysInt(v)}
	case float64:
		return []Value{sysDecimal(decimal{v, -1})}
	}
	return nil
}
