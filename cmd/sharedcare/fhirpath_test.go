package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFHIRPathCommand(t *testing.T) {
	dir := t.TempDir()
	patient := filepath.Join(dir, "patient.json")
	body := `{"resourceType":"Patient","id":"p1","name":[{"family":"Smith","given":["Jane","Ann"]}],"birthDate":"1970-03-04",
	 "generalPractitioner":[{"reference":"Practitioner/g1"}]}`
	if err := os.WriteFile(patient, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"prints the collection as a JSON array", []string{"Patient.name.given", patient}, "", `["Jane","Ann"]`},
		{"an empty result is an empty array", []string{"Patient.telecom", patient}, "", `[]`},
		{"computed values print as JSON", []string{"Patient.name.given.count() + 1", patient}, "", `[3]`},
		{"- reads standard input", []string{"Patient.birthDate", "-"}, body, `["1970-03-04"]`},
		{"--types names each item's type", []string{"--types", "Patient.generalPractitioner.where(resolve() is Practitioner)", patient}, "",
			`[{"type":"Reference","value":{"reference":"Practitioner/g1"}}]`},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := fhirpathCommand(t.Context(), tc.args, strings.NewReader(tc.stdin), &out); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(strings.Fields(out.String()), ""); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	bad := []struct {
		name  string
		args  []string
		usage bool
	}{
		{"expression and file are required", []string{"Patient.name"}, true},
		{"a syntax error fails", []string{"Patient.name.", patient}, false},
		{"an unknown function fails", []string{"Patient.name.nosuch()", patient}, false},
		{"a missing file fails", []string{"Patient.name", filepath.Join(dir, "absent.json")}, false},
		{"an evaluation error fails", []string{"Patient.name.given.single()", patient}, false},
		{"--strict refuses a misspelt element", []string{"--strict", "Patient.name.givn", patient}, false},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := fhirpathCommand(t.Context(), tc.args, strings.NewReader(""), &bytes.Buffer{})
			if err == nil {
				t.Fatal("succeeded; want an error")
			}
			if isUsage := errors.As(err, new(usageError)); isUsage != tc.usage {
				t.Errorf("usage error = %v, want %v (%v)", isUsage, tc.usage, err)
			}
		})
	}
}
