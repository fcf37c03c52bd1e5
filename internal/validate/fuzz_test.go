package validate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// fuzzSeeds are small resources that between them reach every kind of check.
var fuzzSeeds = []string{
	`{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],"name":[{"given":["A",null],"_given":[null,{"id":"g"}],"family":"B"}],"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://x","valueDateTime":"1970-01-01T10:00:00Z"}]},"gender":"female"}`,
	`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1/_history/2"},"valueQuantity":{"value":72.50,"unit":"/min"},"effectiveDateTime":"2023-01-01T10:00:00+01:00"}`,
	`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520","resource":{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}],"managingOrganization":{"reference":"#o"}},"request":{"method":"POST","url":"Patient"}}]}`,
	`{"resourceType":"Parameters","parameter":[{"name":"a","valueInteger":1},{"name":"b","resource":{"resourceType":"Basic","code":{"text":"x"}}}]}`,
	`{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string"}]}]}`,
	`{"resourceType":"Patient","foo":1,"_bar":{},"name":{"family":[]},"gender":null}`,
}

// addRealSeeds adds the first resources of a Synthea bundle when the shared
// data is present (fuzzing works without it, from fuzzSeeds alone).
func addRealSeeds(f *testing.F) {
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	for dir != filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "..", "shared", "data", "synthea-r4", "*.json.gz"))
	if len(paths) == 0 {
		return
	}
	bundle, err := fhir.ParseObject(readBody(f, paths[0]), 0)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, r := range entries(bundle) {
		if rt := fhir.ResourceType(r); !seen[rt] {
			seen[rt] = true
			f.Add(fhir.Marshal(r))
		}
	}
}

// FuzzParseValidate feeds arbitrary bytes through the path of every write:
// parse, then validate strictly and leniently. Neither may panic; a result
// must be nil or a *fhir.Error of kind invalid or unprocessable with issues;
// and what lenient validation leaves must validate strictly without warnings
// whenever lenient validation accepted it.
func FuzzParseValidate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	addRealSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := fhir.ParseObject(data, 0)
		if err != nil {
			return
		}
		_, err = Resource(fhir.Clone(r).(fhir.Object), Options{})
		checkErr(t, err)
		warnings, err := Resource(r, Options{Lenient: true})
		checkErr(t, err)
		if err == nil {
			w2, err2 := Resource(r, Options{})
			if err2 != nil || len(w2) != 0 {
				t.Fatalf("lenient result does not validate strictly: %v %v (lenient warnings %v)\n%s", err2, w2, warnings, fhir.Marshal(r))
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e, ok := err.(*fhir.Error)
	if !ok || (e.Kind != fhir.EInvalid && e.Kind != fhir.EUnprocessable) || len(e.Issues) == 0 {
		t.Fatalf("unexpected error %#v", err)
	}
	if len(e.Issues) > MaxIssues+1 {
		t.Fatalf("%d issues, more than the bound", len(e.Issues))
	}
}
