package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestGeneratedFilesAreFresh regenerates the tables from the committed
// extract and fails when the committed *_gen.go files differ, so that an
// edit of the generator or the extract cannot land without its output.
func TestGeneratedFilesAreFresh(t *testing.T) {
	d, err := readDefs(filepath.Join("..", defsFile))
	if err != nil {
		t.Fatal(err)
	}
	files, err := generate(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"types_gen.go", "searchparams_gen.go"} {
		want, ok := files[name]
		if !ok {
			t.Fatalf("generator produced no %s", name)
		}
		got, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatalf("%v: run go generate ./internal/fhir/r4", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale (%s): run go generate ./internal/fhir/r4", name, firstDiff(got, want))
		}
	}
}

// TestGenerateIsDeterministic guards the byte-for-byte promise of go
// generate: map iteration order must not leak into the output.
func TestGenerateIsDeterministic(t *testing.T) {
	d, err := readDefs(filepath.Join("..", defsFile))
	if err != nil {
		t.Fatal(err)
	}
	a, err := generate(d)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		b, err := generate(d)
		if err != nil {
			t.Fatal(err)
		}
		for name := range a {
			if !bytes.Equal(a[name], b[name]) {
				t.Fatalf("%s differs between two runs (%s)", name, firstDiff(a[name], b[name]))
			}
		}
	}
}

// TestExtractMatchesCommitted re-extracts from the npm package when it is
// unpacked locally (SHAREDCARE_FHIR_DEFINITIONS or /tmp/medplum) and checks
// that the committed extract is what the extractor makes of it.
func TestExtractMatchesCommitted(t *testing.T) {
	dir := os.Getenv("SHAREDCARE_FHIR_DEFINITIONS")
	if dir == "" {
		dir = "/tmp/medplum/package/dist/fhir/r4"
	}
	if _, err := os.Stat(filepath.Join(dir, "profiles-resources.json")); err != nil {
		t.Skipf("official definitions not unpacked at %s (set SHAREDCARE_FHIR_DEFINITIONS): %v", dir, err)
	}
	got, err := extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "r4.json.gz")
	if err := writeDefs(tmp, got); err != nil {
		t.Fatal(err)
	}
	got, err = readDefs(tmp) // compare what a reader sees, after the JSON round trip
	if err != nil {
		t.Fatal(err)
	}
	want, err := readDefs(filepath.Join("..", defsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defs/r4.json.gz is stale: run go run ./internal/fhir/r4/gen -extract %s", dir)
	}
}

func TestNarrow(t *testing.T) {
	known := map[string]bool{"Condition": true, "Observation": true, "AllergyIntolerance": true, "Patient": true}
	tests := []struct {
		name, expr, typ, want string
	}{
		{"a shared union keeps the type's own term", "AllergyIntolerance.code | Condition.code | Observation.code", "Condition", "Condition.code"},
		{"parenthesised terms count as the type's", "(Observation.value as Quantity) | (Condition.abatement as Age)", "Observation", "(Observation.value as Quantity)"},
		{"several terms of the type are all kept", "Observation.code | Observation.component.code | Condition.code", "Observation", "Observation.code | Observation.component.code"},
		{"a bar inside a function call is not a union", "Observation.subject.where(resolve() is Patient | resolve() is Group) | Condition.subject", "Observation", "Observation.subject.where(resolve() is Patient | resolve() is Group)"},
		{"a bar inside a string is not a union", "Observation.code.where(text = 'a|b') | Condition.code", "Observation", "Observation.code.where(text = 'a|b')"},
		{"terms not rooted at a known type are kept", "Observation.code | %resource.code | Condition.code", "Observation", "Observation.code | %resource.code"},
		{"an expression naming no term of the type is unchanged", "Condition.code | AllergyIntolerance.code", "Patient", "Condition.code | AllergyIntolerance.code"},
		{"a single term is unchanged", "Patient.identifier", "Patient", "Patient.identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := narrow(tt.expr, tt.typ, known); got != tt.want {
				t.Errorf("narrow(%q, %s) = %q, want %q", tt.expr, tt.typ, got, tt.want)
			}
		})
	}
}

func TestValueSetResolution(t *testing.T) {
	terms := []terminology{
		{ResourceType: "CodeSystem", URL: "cs-nested", Content: "complete", Concept: []concept{
			{Code: "a", Concept: []concept{{Code: "a1"}, {Code: "a2", Concept: []concept{{Code: "a2x"}}}}}, {Code: "b"},
		}},
		{ResourceType: "CodeSystem", URL: "cs-fragment", Content: "fragment", Concept: []concept{{Code: "z"}}},
	}
	vs := func(url string, include, exclude []composeRule) terminology {
		t := terminology{ResourceType: "ValueSet", URL: url}
		t.Compose = &struct {
			Include []composeRule `json:"include"`
			Exclude []composeRule `json:"exclude"`
		}{include, exclude}
		return t
	}
	codes := func(cs ...string) []struct{ Code string } {
		var out []struct{ Code string }
		for _, c := range cs {
			out = append(out, struct{ Code string }{c})
		}
		return out
	}
	terms = append(terms,
		vs("whole", []composeRule{{System: "cs-nested"}}, nil),
		vs("explicit", []composeRule{{System: "cs-nested", Concept: codes("b", "a")}}, nil),
		vs("filtered", []composeRule{{System: "cs-nested", Filter: []json.RawMessage{[]byte(`{}`)}}}, nil),
		vs("external", []composeRule{{System: "urn:iso:std:iso:4217"}}, nil),
		vs("incomplete", []composeRule{{System: "cs-fragment"}}, nil),
		vs("excluding", []composeRule{{System: "cs-nested"}}, []composeRule{{System: "cs-nested", Concept: codes("a2x", "b")}}),
		vs("nested-set", []composeRule{{ValueSet: []string{"explicit"}}}, nil),
		vs("partly-external", []composeRule{{System: "cs-nested"}, {System: "urn:ietf:bcp:13"}}, nil),
	)
	r := newResolver(terms)
	tests := []struct {
		name, url string
		want      []string
	}{
		{"a whole code system includes nested concepts", "whole|4.0.1", []string{"a", "a1", "a2", "a2x", "b"}},
		{"explicit concepts keep their order", "explicit", []string{"b", "a"}},
		{"a filter is not enumerable", "filtered", nil},
		{"an external code system is not enumerable", "external", nil},
		{"a fragment code system is not enumerable", "incomplete", nil},
		{"exclusions are removed", "excluding", []string{"a", "a1", "a2"}},
		{"an included value set is expanded", "nested-set", []string{"b", "a"}},
		{"one non-enumerable include spoils the set", "partly-external", nil},
		{"an unknown value set is not enumerable", "nowhere", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.valueSet(tt.url, 0); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("valueSet(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}

// firstDiff describes where two generated files first differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: have %.120q, generator makes %.120q", i+1, gl, wl)
		}
	}
	return "same lines, different bytes"
}
