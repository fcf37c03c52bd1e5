package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/synth"
)

// import --per-organisation --data ROOT gives every organisation of a
// generated region a store of its own holding exactly its own Patients.
func TestImportPerOrganisationIntoLocalStores(t *testing.T) {
	region, root := t.TempDir(), t.TempDir()
	if _, err := synth.Generate(t.Context(), region, synth.Options{People: 40, Seed: 11, Format: synth.Bundle}); err != nil {
		t.Fatal(err)
	}
	if err := runImport(t.Context(), []string{"--per-organisation", "--data", root, "--quiet", region}); err != nil {
		t.Fatalf("import --per-organisation: %v", err)
	}
	f, err := os.Open(filepath.Join(region, "truth.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	byOrg := map[string][]string{}
	for _, r := range rows[1:] {
		byOrg[r[0]] = append(byOrg[r[0]], r[1])
	}
	for ods, patients := range byOrg {
		st, err := backend.Open(t.Context(), filepath.Join(root, ods), "")
		if err != nil {
			t.Fatalf("%s: %v", ods, err)
		}
		for _, id := range patients {
			if _, err := st.Read(t.Context(), "Patient", id); err != nil {
				t.Errorf("%s: Patient/%s: %v", ods, id, err)
			}
		}
		res, err := st.Search(t.Context(), &store.Query{Types: []string{"Patient"}, Count: 1, Total: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != len(patients) {
			t.Errorf("%s holds %d Patients; the truth file places %d there", ods, res.Total, len(patients))
		}
		// Every record is stamped as the organisation's own.
		mine, err := st.Search(t.Context(), &store.Query{Types: []string{"Patient"}, Count: 1, Total: true,
			Clauses: []store.Clause{{{Kind: store.CondURI, Param: "_source", Match: store.MatchExact, Value: access.Source(ods)}}}})
		if err != nil {
			t.Fatal(err)
		}
		if mine.Total != len(patients) {
			t.Errorf("%s: %d of its %d Patients carry its meta.source", ods, mine.Total, len(patients))
		}
		st.Close()
	}
}

func TestImportPerOrganisationRefusesBadUsage(t *testing.T) {
	region := t.TempDir()
	if _, err := synth.Generate(t.Context(), region, synth.Options{People: 5, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	nodes := filepath.Join(t.TempDir(), "nodes.csv")
	os.WriteFile(nodes, []byte("ods,url\nZ99999,http://127.0.0.1:1/fhir\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"neither nodes nor data", []string{"--per-organisation", region}},
		{"both nodes and data", []string{"--per-organisation", "--nodes", nodes, "--data", t.TempDir(), region}},
		{"two region folders", []string{"--per-organisation", "--data", t.TempDir(), region, region}},
		{"a nodes file missing an organisation", []string{"--per-organisation", "--nodes", nodes, region}},
		{"nodes without per-organisation", []string{"--nodes", nodes, "--data", t.TempDir(), region}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := runImport(t.Context(), append(tc.args, "--quiet")); !fhir.IsKind(err, fhir.EInvalid) {
				t.Errorf("got %v, want an EInvalid usage error", err)
			}
		})
	}
}
