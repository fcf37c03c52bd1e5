package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

func TestReindexCommandRefusesBadUsage(t *testing.T) {
	t.Setenv("SHAREDCARE_DATA", "")
	t.Setenv("SHAREDCARE_DB", "")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no store", nil},
		{"a stray argument", []string{"--data", t.TempDir(), "extra"}},
		{"zero batch", []string{"--data", t.TempDir(), "--batch", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := runReindex(t.Context(), tc.args); !fhir.IsKind(err, fhir.EInvalid) {
				t.Errorf("got %v, want an EInvalid usage error", err)
			}
		})
	}
}

func TestReindexCommandRebuildsALocalStore(t *testing.T) {
	data, in := t.TempDir(), t.TempDir()
	file := filepath.Join(in, "p.ndjson")
	os.WriteFile(file, []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+`{"resourceType":"Patient","id":"b"}`+"\n"), 0o644)
	if err := runImport(t.Context(), []string{"--data", data, "--quiet", file}); err != nil {
		t.Fatalf("import: %v", err)
	}
	err := runReindex(t.Context(), []string{"--data", data, "--quiet", "--batch", "1"})
	if fhir.IsKind(err, fhir.ENotSupported) {
		t.Skipf("the SQLite store does not implement store.Reindexer yet: %v", err)
	}
	if err != nil {
		t.Fatalf("reindex: %v", err)
	}
}
