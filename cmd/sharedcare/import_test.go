package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

func TestImportCommandLoadsIntoALocalStore(t *testing.T) {
	data, in := t.TempDir(), t.TempDir()
	file := filepath.Join(in, "p.ndjson")
	os.WriteFile(file, []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+`{"resourceType":"Patient","id":"b"}`+"\n"), 0o644)
	// Flags after the path as well as before it.
	if err := runImport(t.Context(), []string{"--data", data, file, "--quiet", "--workers", "2"}); err != nil {
		t.Fatalf("import: %v", err)
	}
	bad := filepath.Join(in, "q.ndjson")
	os.WriteFile(bad, []byte(`{"resourceType":"Patient","id":"c","colour":"red"}`+"\n"), 0o644)
	err := runImport(t.Context(), []string{"--data", data, "--quiet", bad})
	if err == nil || !strings.Contains(err.Error(), "1 resources failed") {
		t.Errorf("importing a refused resource: got %v, want an error counting it (non-zero exit)", err)
	}
	st, err := backend.Open(t.Context(), data, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"a", "b"} {
		if _, err := st.Read(t.Context(), "Patient", id); err != nil {
			t.Errorf("Patient/%s: %v", id, err)
		}
	}
	if _, err := st.Read(t.Context(), "Patient", "c"); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("Patient/c: got %v, want not found (strict import refused it)", err)
	}
}

func TestImportCommandRefusesBadUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no path", []string{"--data", t.TempDir()}},
		{"no target", []string{"x.json"}},
		{"both targets", []string{"--data", t.TempDir(), "--url", "http://127.0.0.1:1/fhir", "x.json"}},
		{"zero workers", []string{"--data", t.TempDir(), "--workers", "0", "x.json"}},
		{"a path that is not FHIR input", []string{"--data", t.TempDir(), "import_test.go"}},
		{"an --org that is not an ODS code", []string{"--data", t.TempDir(), "--org", "rxx example", "x.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := runImport(t.Context(), tc.args); !fhir.IsKind(err, fhir.EInvalid) {
				t.Errorf("got %v, want an EInvalid usage error", err)
			}
		})
	}
}

func TestBenchRefusesAnotherMachine(t *testing.T) {
	err := runBench(t.Context(), []string{"read", "--url", "http://192.0.2.7:8080/fhir", "--duration", "1s"})
	if !fhir.IsKind(err, fhir.EForbidden) {
		t.Errorf("got %v, want EForbidden", err)
	}
}

// Imported records belong to an organisation: --org stamps it as
// meta.source on every resource that names no source of its own, since the
// access model shares records by the organisation that holds them (without
// it, staff of other organisations could see none of the load).
func TestImportCommandStampsTheOrganisation(t *testing.T) {
	data, in := t.TempDir(), t.TempDir()
	file := filepath.Join(in, "p.ndjson")
	os.WriteFile(file, []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+
		`{"resourceType":"Patient","id":"b","meta":{"source":"https://elsewhere.example/feed"}}`+"\n"), 0o644)
	if err := runImport(t.Context(), []string{"--data", data, "--org", "RXX", "--quiet", file}); err != nil {
		t.Fatalf("import: %v", err)
	}
	st, err := backend.Open(t.Context(), data, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, want := range map[string]string{"a": access.Source("RXX"), "b": "https://elsewhere.example/feed"} {
		v, err := st.Read(t.Context(), "Patient", id)
		if err != nil {
			t.Fatal(err)
		}
		r, err := fhir.ParseObject(v.Body, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := fhir.Meta(r)["source"].(string); got != want {
			t.Errorf("Patient/%s meta.source %q, want %q", id, got, want)
		}
	}
	// And the store indexes it, so that the access filter can use it.
	res, err := st.Search(t.Context(), &store.Query{Types: []string{"Patient"}, Total: true,
		Clauses: []store.Clause{{{Kind: store.CondURI, Param: "_source", Match: store.MatchExact, Value: access.Source("RXX")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1 {
		t.Errorf("%d Patients indexed under the organisation's source, want 1", res.Total)
	}
}
