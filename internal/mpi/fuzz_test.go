package mpi

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Whatever a Patient holds, reading and comparing it must not panic: the
// index sees every Patient that reaches the server.
func FuzzFromPatientCompare(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","name":[{"family":"O'Brien","given":["Zoë"]}],"birthDate":"1961-02-03"}`),
		[]byte(`{"resourceType":"Patient","name":[{"family":"obrien","given":["zoe"]}],"birthDate":"1961-03-02","gender":"female"}`))
	f.Add([]byte(`{"name":[{"given":[1,null,""],"family":""}],"birthDate":"19","telecom":[{"system":"phone","value":"+44"}]}`),
		[]byte(`{"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"999 000 0018"},{"value":"x"}],"address":[{"line":[],"postalCode":"  "}]}`))
	f.Add([]byte(`{"name":"x","address":{},"identifier":[{"system":"a","value":"1234567"}]}`),
		[]byte(`{"name":[{"use":"old","family":"a b c d"}],"identifier":[{"system":"a","value":"1234576"}],"deceasedBoolean":true}`))
	m := DefaultModel()
	f.Fuzz(func(t *testing.T, x, y []byte) {
		px, err := fhir.ParseObject(x, 32)
		if err != nil {
			return
		}
		py, err := fhir.ParseObject(y, 32)
		if err != nil {
			return
		}
		a, b := FromPatient("Patient/a", px), FromPatient("Patient/b", py)
		ab, ba := m.Compare(a, b), m.Compare(b, a)
		if ab.Grade != ba.Grade && !(ab.Conflict || ba.Conflict) {
			// The comparison is symmetric in everything but the order of
			// multi-valued fields, which cannot change a grade.
			t.Errorf("Compare(a,b) grade %s, Compare(b,a) %s", ab.Grade, ba.Grade)
		}
		ix := NewIndex(m)
		ix.Add(a)
		ix.Candidates(b, 3)
		Link(m, []Record{a, b})
	})
}
