package fhirpath

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

const benchPatient = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},
 "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],
 "name":[{"use":"official","family":"Smith","given":["Jane","Ann"]},{"use":"maiden","family":"Jones"}],
 "gender":"female","birthDate":"1970-03-04",
 "address":[{"line":["1 High St"],"city":"Leeds","postalCode":"LS1 1AA"}]}`

const benchObservation = `{"resourceType":"Observation","id":"o1","status":"final",
 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
 "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},
 "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-02T10:00:00Z",
 "valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}`

// BenchmarkSearchExpressions measures the expressions search indexing
// evaluates on every write.
func BenchmarkSearchExpressions(b *testing.B) {
	patient, err := fhir.ParseObject([]byte(benchPatient), 100)
	if err != nil {
		b.Fatal(err)
	}
	obs, err := fhir.ParseObject([]byte(benchObservation), 100)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name, expr string
		res        fhir.Object
		want       int
	}{
		{"Patient.name", "Patient.name", patient, 2},
		{"Observation.code", "Observation.code", obs, 1},
		{"Observation.effective", "Observation.effective", obs, 1},
		{"ObservationValueAsQuantity", "(Observation.value as Quantity)", obs, 1},
		{"SubjectWhereResolveIsPatient", "Observation.subject.where(resolve() is Patient)", obs, 1},
		{"PatientPhoneticFamily", "Patient.name.family | Patient.name.given", patient, 4},
	}
	for _, c := range cases {
		e := MustCompile(c.expr)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, err := e.Evaluate(c.res)
				if err != nil || len(out) != c.want {
					b.Fatalf("got %d items (%v), want %d", len(out), err, c.want)
				}
			}
		})
	}
}

// BenchmarkCompile measures compiling a typical search expression.
func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("Observation.subject.where(resolve() is Patient)"); err != nil {
			b.Fatal(err)
		}
	}
}
