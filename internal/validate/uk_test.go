package validate

import (
	"os"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// The PDS example payloads in ../shared/data/pds-examples are git symlink
// placeholders in this copy of the data, so UK-shaped resources are also
// kept here: testdata/uk-*.json are written in the shape of the NHS
// Personal Demographics Service API's examples (NHS number with its
// verification-status extension, ODS-coded GP, UK Core extensions).

func TestUKShapedResources(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		edit    func(string) string
		kind    fhir.Kind
		expr    string
		message string
	}{
		{name: "a PDS-shaped patient with NHS number 9000000009 is valid", file: "uk-patient.json"},
		{name: "a PDS-shaped related-person bundle is valid", file: "uk-relatedperson-bundle.json"},
		{name: "a patient whose NHS number has a wrong check digit is unprocessable", file: "uk-patient.json",
			edit: func(s string) string { return strings.Replace(s, `"value": "9000000009"`, `"value": "9000000008"`, 1) },
			kind: fhir.EUnprocessable, expr: "Patient.identifier[0].value", message: "check digit"},
		{name: "a patient whose NHS number is written with spaces is told the stored form", file: "uk-patient.json",
			edit: func(s string) string {
				return strings.Replace(s, `"value": "9000000009"`, `"value": "900 000 0009"`, 1)
			},
			kind: fhir.EUnprocessable, expr: "Patient.identifier[0].value", message: `normalised form "9000000009"`},
		{name: "a related person's patient NHS number inside a bundle is checked", file: "uk-relatedperson-bundle.json",
			edit: func(s string) string { return strings.Replace(s, `"value": "9000000017"`, `"value": "9000000018"`, 1) },
			kind: fhir.EUnprocessable, expr: "Bundle.entry[0].resource.patient.identifier.value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			s := string(body)
			if tt.edit != nil {
				if s = tt.edit(s); s == string(body) {
					t.Fatal("the edit changed nothing")
				}
			}
			r, err := fhir.ParseObject([]byte(s), 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Resource(r, Options{})
			if got := fhir.KindOf(err); got != tt.kind {
				t.Fatalf("kind = %q, want %q (%v)", got, tt.kind, err)
			}
			if err == nil {
				return
			}
			is := err.(*fhir.Error).Issues
			if len(is) != 1 || is[0].Expression != tt.expr || is[0].Code != CodeBusinessRule || !strings.Contains(is[0].Diagnostics, tt.message) {
				t.Errorf("issues = %+v, want one business-rule issue at %s mentioning %q", is, tt.expr, tt.message)
			}
		})
	}
}
