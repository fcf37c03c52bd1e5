package fhirpath

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// FuzzCompile checks that no expression text makes Compile (or evaluating
// what compiles) panic or hang: expressions arrive from users through
// `sharedcare fhirpath` and, later, custom search parameters.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"Patient.name.given", "(Observation.value as Quantity).value > 5 'mg'",
		"Observation.subject.where(resolve() is Patient)", "@2015-02-04T14:34:28.123+10:00 + 1 year",
		"'a\\u0041' & %ucum", "1.0 / 3", "iif(true, 1, 2)", "name.select(given | family).distinct()",
		"/* c */ 2 // x", "`Patient`.name[0]", "$this.aggregate($total + $this, 0)", "@T14:34", "{}",
		"Patient.name.where(use = 'official').given.first().substring(1, 2).upper()",
		"((((((((((1))))))))))", "-(-(-1))", "1 'cm'.comparable(1 '[in_i]')", "%`vs-x`",
	} {
		f.Add(s)
	}
	patient, err := fhir.ParseObject([]byte(benchPatient), 100)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Compile(expr)
		if err != nil {
			if e != nil {
				t.Fatalf("Compile(%q) returned an expression and an error", expr)
			}
			return
		}
		// Deep repeat()/descendants() over a small resource stay bounded.
		_, _ = e.Evaluate(patient)
	})
}
