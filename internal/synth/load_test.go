package synth

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
)

// Each organisation's folder loads on its own into its own node: every
// transaction bundle commits on a fresh SQLite store through the real
// engine, and the Patients read back.
func TestEachFolderLoadsIntoItsOwnNode(t *testing.T) {
	dir, _ := generate(t, 150, 21, Bundle)
	orgs := readCSV(t, filepath.Join(dir, "organisations.csv"))[1:]
	for _, row := range orgs {
		ods := row[0]
		t.Run(ods, func(t *testing.T) {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "node.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			eng := engine.New(st, engine.Config{BaseURL: "http://127.0.0.1/fhir"})
			files, _ := filepath.Glob(filepath.Join(dir, ods, "bundle-*.json"))
			if len(files) == 0 {
				t.Fatalf("no bundles for %s", ods)
			}
			var patients []string
			for _, f := range files {
				body, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := fhir.ParseObject(body, 100)
				for _, en := range b["entry"].([]any) {
					r := en.(fhir.Object)["resource"].(fhir.Object)
					if fhir.ResourceType(r) == "Patient" {
						patients = append(patients, fhir.ID(r))
					}
				}
				if _, err := eng.Bundle(t.Context(), body, engine.WriteOptions{}); err != nil {
					t.Fatalf("%s: %v", filepath.Base(f), fhir.Outcome(err))
				}
			}
			for _, id := range patients {
				if _, err := eng.Read(t.Context(), "Patient", id); err != nil {
					t.Errorf("Patient/%s: %v", id, err)
				}
			}
		})
	}
}
