package service

import (
	"context"
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// The CapabilityStatement lists what the node answers and nothing more: the
// index's operations appear when the index is on, and only then.
func TestCapabilitiesListTheIndexOperations(t *testing.T) {
	ctx := context.Background()
	ops := func(eng *engine.Engine, typ string) []string {
		var names []string
		for _, r := range eng.Capabilities()["rest"].([]any)[0].(fhir.Object)["resource"].([]any) {
			if r.(fhir.Object)["type"] != typ {
				continue
			}
			for _, op := range r.(fhir.Object)["operation"].([]any) {
				names = append(names, op.(fhir.Object)["name"].(string))
			}
		}
		slices.Sort(names)
		return names
	}
	st := backend.OpenSQLiteForTest(t)
	eng, _, err := Open(ctx, st, engine.Config{BaseURL: "http://127.0.0.1:1/fhir"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ops(eng, "Patient"), []string{"everything", "match", "merge", "unmerge", "validate"}; !slices.Equal(got, want) {
		t.Errorf("Patient operations with the index: %v, want %v", got, want)
	}
	if got, want := ops(eng, "Task"), []string{"accept", "reject", "validate"}; !slices.Equal(got, want) {
		t.Errorf("Task operations with the index: %v, want %v", got, want)
	}
	plain := engine.New(st, engine.Config{BaseURL: "http://127.0.0.1:1/fhir"})
	if got, want := ops(plain, "Patient"), []string{"everything", "validate"}; !slices.Equal(got, want) {
		t.Errorf("Patient operations without the index: %v, want %v", got, want)
	}
}
