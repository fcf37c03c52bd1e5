package fhirpath

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

const testObservation = `{"resourceType":"Observation","id":"o1","status":"final",
 "contained":[{"resourceType":"Patient","id":"c1","gender":"female"}],
 "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
 "subject":{"reference":"Patient/p1"},
 "performer":[{"reference":"Practitioner/d1"},{"reference":"#c1"},{"reference":"http://example.org/fhir/Organization/x/_history/2"}],
 "effectivePeriod":{"start":"2024-01-02T10:00:00Z","end":"2024-01-02T11:00:00Z"},
 "issued":"2024-01-02T12:00:00.000Z",
 "valueQuantity":{"value":72.0,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},
 "component":[{"code":{"text":"a"},"valueQuantity":{"value":1,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}},
              {"code":{"text":"b"},"valueCodeableConcept":{"text":"x"}},
              {"code":{"text":"c"},"valueQuantity":{"value":2,"unit":"g","system":"http://unitsofmeasure.org","code":"g"}}],
 "_status":{"extension":[{"url":"http://example.org/why","valueString":"checked"}]}}`

func mustParse(t testing.TB, s string) fhir.Object {
	t.Helper()
	o, err := fhir.ParseObject([]byte(s), 100)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// describe renders a result as "type=json" items for comparison.
func describe(out []Value) string {
	parts := make([]string, len(out))
	for i, v := range out {
		typ := v.Type()
		if v.IsSystem() {
			typ = "System." + typ
		}
		parts[i] = typ + "=" + string(fhir.Marshal(v.JSON()))
	}
	return strings.Join(parts, " ")
}

// TestFHIRSemantics checks what the search indexer relies on, beyond the
// official suite: the FHIR types of nodes, choice elements, primitive
// extensions, resolve() without a server.
func TestFHIRSemantics(t *testing.T) {
	obs := mustParse(t, testObservation)
	cases := []struct {
		rule, expr, want string
	}{
		{"a choice element is named without its type and carries the chosen type", "Observation.effective",
			`Period={"end":"2024-01-02T11:00:00Z","start":"2024-01-02T10:00:00Z"}`},
		{"a primitive carries its FHIR type", "Observation.issued", `instant="2024-01-02T12:00:00.000Z"`},
		{"as picks the choice of that type", "(Observation.value as Quantity).unit", `string="beats/minute"`},
		{"the as operator over a collection filters it, as R4 search parameters assume", "(Observation.component.value as Quantity).code",
			`code="mg" code="g"`},
		{"ofType filters choices", "Observation.component.value.ofType(CodeableConcept).text", `string="x"`},
		{"a backbone element is a BackboneElement", "Observation.component.first().is(BackboneElement)", `System.Boolean=true`},
		{"a primitive's extensions are reached through the primitive", "Observation.status.extension.value", `string="checked"`},
		{"extension(url) finds a primitive's extension", "Observation.status.extension('http://example.org/why').exists()", `System.Boolean=true`},
		{"resolve() of a relative reference knows the target type", "Observation.subject.where(resolve() is Patient).reference", `string="Patient/p1"`},
		{"resolve() of a reference of another type is not a Patient", "Observation.performer.where(resolve() is Patient).reference", `string="#c1"`},
		{"resolve() finds a contained resource", "Observation.performer.resolve().ofType(Patient).gender", `code="female"`},
		{"resolve() reads the type of an absolute versioned reference", "Observation.performer.where(resolve() is Organization).exists()", `System.Boolean=true`},
		{"quantities compare across units", "Observation.component.value.ofType(Quantity).where($this > 500 'mg').code", `code="g"`},
		{"date-times compare with a partial date", "Observation.issued > @2024-01-01", `System.Boolean=true`},
		{"%resource is the root inside iterations", "Observation.component.where(%resource.status = 'final').count()", `System.Integer=3`},
		{"%vs- names a value set URL", "%vs-observation-codes", `System.String="http://hl7.org/fhir/ValueSet/observation-codes"`},
		{"%ext- names an extension URL", "%ext-patient-birthTime", `System.String="http://hl7.org/fhir/StructureDefinition/patient-birthTime"`},
		{"a contained resource is typed by its resourceType", "Observation.contained.gender", `code="female"`},
		{"a decimal keeps its written precision", "Observation.value.value", `decimal=72.0`},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			e, err := Compile(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.Evaluate(obs)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(out); got != tc.want {
				t.Errorf("%s\n got %s\nwant %s", tc.expr, got, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	obs := mustParse(t, testObservation)
	cases := []struct {
		rule, expr string
		kind       fhir.Kind
		compile    bool
	}{
		{"a syntax error is invalid input", "Observation.code.", fhir.EInvalid, true},
		{"an unknown function fails at compile time", "Observation.code.nosuch()", fhir.EInvalid, true},
		{"a wrong number of arguments fails at compile time", "Observation.code.where()", fhir.EInvalid, true},
		{"an unterminated string fails", "'abc", fhir.EInvalid, true},
		{"a choice spelt with its type is an error", "Observation.valueQuantity", fhir.EUnprocessable, false},
		{"single() over several items fails", "Observation.component.single()", fhir.EUnprocessable, false},
		{"terminology functions need a server", "Observation.code.coding.memberOf('http://x')", fhir.EUnprocessable, false},
		{"comparing a number with a string fails", "Observation.value.value < 'a'", fhir.EUnprocessable, false},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			e, err := Compile(tc.expr)
			if !tc.compile {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				_, err = e.Evaluate(obs)
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != tc.kind {
				t.Errorf("%s: got error %v, want a *fhir.Error of kind %s", tc.expr, err, tc.kind)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	obs := mustParse(t, testObservation)
	t.Run("a resolver replaces the stand-ins", func(t *testing.T) {
		pat := mustParse(t, `{"resourceType":"Patient","id":"p1","gender":"male"}`)
		out, err := MustCompile("Observation.subject.resolve().gender").Evaluate(obs, WithResolver(func(ref string) fhir.Object {
			if ref == "Patient/p1" {
				return pat
			}
			return nil
		}))
		if got := describe(out); err != nil || got != `code="male"` {
			t.Errorf("got %s (%v), want the resolved Patient's gender", got, err)
		}
	})
	t.Run("variables are bound", func(t *testing.T) {
		out, err := MustCompile("%limit + 1").Evaluate(nil, WithVariable("limit", 41))
		if got := describe(out); err != nil || got != "System.Integer=42" {
			t.Errorf("got %s (%v), want 42", got, err)
		}
	})
	t.Run("a '-' after a variable's name is subtraction", func(t *testing.T) {
		out, err := MustCompile("%limit-1").Evaluate(nil, WithVariable("limit", 41))
		if got := describe(out); err != nil || got != "System.Integer=40" {
			t.Errorf("got %s (%v), want 40", got, err)
		}
	})
	t.Run("strict mode refuses an element the model does not define", func(t *testing.T) {
		e := MustCompile("Observation.code.coding.cod")
		if out, err := e.Evaluate(obs); err != nil || len(out) != 0 {
			t.Errorf("lenient: got %v, %v; want empty", out, err)
		}
		if _, err := e.Evaluate(obs, WithStrict()); err == nil || !strings.Contains(err.Error(), "Coding has no element cod") {
			t.Errorf("strict: got %v, want an error naming Coding and cod", err)
		}
	})
	t.Run("strict mode refuses a path about another type", func(t *testing.T) {
		if _, err := MustCompile("Patient.gender").Evaluate(obs, WithStrict()); err == nil {
			t.Error("succeeded; want an error")
		}
	})
	t.Run("an unknown variable is an error", func(t *testing.T) {
		if _, err := MustCompile("%nosuch").Evaluate(obs); err == nil {
			t.Error("succeeded; want an error")
		}
	})
	t.Run("trace reports to the trace function", func(t *testing.T) {
		var got []string
		_, err := MustCompile("Observation.component.code.text.trace('codes').count()").Evaluate(obs, WithTrace(func(name string, vals []Value) {
			got = append(got, name+":"+describe(vals))
		}))
		want := `codes:string="a" string="b" string="c"`
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("got %q (%v), want [%s]", got, err, want)
		}
	})
	t.Run("composite components evaluate on a node", func(t *testing.T) {
		comps, err := MustCompile("Observation.component").Evaluate(obs)
		if err != nil || len(comps) != 3 {
			t.Fatalf("components: %d, %v", len(comps), err)
		}
		out, err := MustCompile("code.text & '/' & %resource.id & '/' & %context.code.text").EvaluateOn(obs, comps[2])
		if got := describe(out); err != nil || got != `System.String="c/o1/c"` {
			t.Errorf("got %s (%v), want c/o1/c", got, err)
		}
	})
}

// TestConcurrentEvaluation evaluates one compiled expression from many
// goroutines over resources of different types, which exercises the
// per-node navigation cache (run with -race).
func TestConcurrentEvaluation(t *testing.T) {
	e := MustCompile("identifier.value | name.family | code.coding.code")
	resources := []fhir.Object{
		mustParse(t, `{"resourceType":"Patient","identifier":[{"value":"1"}],"name":[{"family":"F"}]}`),
		mustParse(t, testObservation),
		mustParse(t, `{"resourceType":"Organization","identifier":[{"value":"2"}],"name":"Org"}`),
	}
	want := []string{`string="1" string="F"`, `code="8867-4"`, `string="2"`}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := (g + i) % len(resources)
				out, err := e.Evaluate(resources[k])
				if got := describe(out); err != nil || got != want[k] {
					t.Errorf("resource %d: got %s (%v), want %s", k, got, err, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}
