package validate

import (
	"path/filepath"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// syntheaSample returns the resources of the first few Synthea bundles, in
// file order, so every run measures the same mix (mostly Observations, then
// Claims, Encounters and ExplanationOfBenefits, as in the whole set).
func syntheaSample(b *testing.B, files int) []fhir.Object {
	dir := sharedData(b, "synthea-r4")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if len(paths) > files {
		paths = paths[:files]
	}
	var out []fhir.Object
	for _, p := range paths {
		bundle, err := fhir.ParseObject(readBody(b, p), 0)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, entries(bundle)...)
	}
	return out
}

// BenchmarkValidateSynthea validates real Synthea resources one per
// operation (strict mode does not modify them, so they are reused).
func BenchmarkValidateSynthea(b *testing.B) {
	rs := syntheaSample(b, 8)
	Resource(rs[0], Options{}) // compile the model outside the timing
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := Resource(rs[i], Options{}); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(rs) {
			i = 0
		}
	}
}

// BenchmarkValidateObservation validates the Observations only, the most
// common resource of an ingest.
func BenchmarkValidateObservation(b *testing.B) {
	var obs []fhir.Object
	for _, r := range syntheaSample(b, 8) {
		if fhir.ResourceType(r) == "Observation" {
			obs = append(obs, r)
		}
	}
	Resource(obs[0], Options{})
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := Resource(obs[i], Options{}); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(obs) {
			i = 0
		}
	}
}

// BenchmarkCompileModel measures the one-off cost paid by the first
// validation after start.
func BenchmarkCompileModel(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		compile()
	}
}
