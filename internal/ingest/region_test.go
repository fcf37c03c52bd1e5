package ingest

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
	"github.com/sharedcare/sharedcare/internal/synth"
)

// A generated region loads with --per-organisation into one node per
// organisation over HTTP: each node ends up holding exactly the Patients
// that the truth file places at that organisation, and nobody else's.
func TestRegionLoadsOneNodePerOrganisation(t *testing.T) {
	dir := t.TempDir()
	if _, err := synth.Generate(t.Context(), dir, synth.Options{People: 60, Seed: 7, Format: synth.NDJSON}); err != nil {
		t.Fatal(err)
	}
	codes, err := Organisations(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := patientsByOrganisation(t, filepath.Join(dir, "truth.csv"))

	// One real server per organisation, each with its own store and key.
	var nodesCSV strings.Builder
	nodesCSV.WriteString("ods,url,token\n")
	stores := map[string]store.Store{}
	for _, ods := range codes {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "node.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores[ods] = st
		base, token := server(t, st)
		nodesCSV.WriteString(ods + "," + base + "," + token + "\n")
	}
	nodes, err := ReadNodes(strings.NewReader(nodesCSV.String()))
	if err != nil {
		t.Fatal(err)
	}
	open := func(ctx context.Context, ods string) (Sink, func() error, error) {
		n, ok := nodes[ods]
		if !ok {
			t.Fatalf("no node for %s", ods)
		}
		h, err := NewHTTP(n.URL, HTTPOptions{Token: n.Token})
		if err != nil {
			return nil, nil, err
		}
		return h, h.Close, nil
	}
	sums, err := RunRegion(t.Context(), dir, codes, open, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, ods := range codes {
		if s := sums[ods]; s.Failed != 0 {
			t.Errorf("%s: %d resources failed: %v", ods, s.Failed, s.Failures)
		}
		if got := stored(t, stores[ods], "Patient"); got != want[ods] {
			t.Errorf("%s holds %d Patients; the truth file places %d there", ods, got, want[ods])
		}
	}
}

// A nodes file that misses an organisation stops the run before anything
// is loaded anywhere.
func TestRegionWithAMissingNodeLoadsNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := synth.Generate(t.Context(), dir, synth.Options{People: 20, Seed: 8, Format: synth.NDJSON}); err != nil {
		t.Fatal(err)
	}
	codes, err := Organisations(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base, token := server(t, st)
	missing := codes[len(codes)-1]
	open := func(ctx context.Context, ods string) (Sink, func() error, error) {
		if ods == missing {
			return nil, nil, os.ErrNotExist
		}
		h, err := NewHTTP(base, HTTPOptions{Token: token})
		if err != nil {
			return nil, nil, err
		}
		return h, h.Close, nil
	}
	if _, err := RunRegion(t.Context(), dir, codes, open, Options{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("RunRegion with no node for %s: error %v, want one naming it", missing, err)
	}
	for _, typ := range []string{"Patient", "Organization"} {
		if got := stored(t, st, typ); got != 0 {
			t.Errorf("%d %s resources were loaded although the run was refused", got, typ)
		}
	}
}

func TestReadNodesRefusesBadFiles(t *testing.T) {
	for name, text := range map[string]string{
		"no header":          "Z90001,http://127.0.0.1:1/fhir\n",
		"missing url":        "ods,url\nZ90001,\n",
		"not an ODS code":    "ods,url\nz9-01,http://127.0.0.1:1/fhir\n",
		"organisation twice": "ods,url\nZ90001,http://127.0.0.1:1/fhir\nZ90001,http://127.0.0.1:2/fhir\n",
	} {
		if _, err := ReadNodes(strings.NewReader(text)); err == nil {
			t.Errorf("%s: ReadNodes accepted %q", name, text)
		}
	}
}

func patientsByOrganisation(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "organisation,patient,person" {
		t.Fatalf("truth.csv header %v", rows[0])
	}
	n := map[string]int{}
	for _, r := range rows[1:] {
		n[r[0]]++
	}
	return n
}
