package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/synth"
)

// server starts the real API with the real engine over st on 127.0.0.1 and
// returns its FHIR base URL and an admin token.
func server(t *testing.T, st store.Store) (base, token string) {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	base = srv.URL + "/fhir"
	cfg := config.Default()
	cfg.BaseURL = base
	authority, err := auth.Load(t.Context(), st, base)
	if err != nil {
		t.Fatal(err)
	}
	h = api.New(engine.New(st, engine.Config{BaseURL: base}), authority, cfg, nil)
	token, err = authority.IssueAdmin(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return base, token
}

// countByType counts the resources in the input files by type, the way the
// check compares them with what the store holds.
func countByType(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := Files([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Entry []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			counts[e.Resource.ResourceType]++
		}
	}
	return counts
}

// stored counts the current resources of typ in st, paging a search.
func stored(t *testing.T, st store.Store, typ string) int {
	t.Helper()
	res, err := st.Search(t.Context(), &store.Query{Types: []string{typ}, Count: 1, Total: true})
	if err != nil {
		t.Fatalf("search %s: %v", typ, err)
	}
	return res.Total
}

func checkCounts(t *testing.T, st store.Store, want map[string]int) {
	t.Helper()
	for typ, n := range want {
		if got := stored(t, st, typ); got != n {
			t.Errorf("%s: store holds %d, want %d", typ, got, n)
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestImportUSCoreOverHTTPIntoTheRealServer(t *testing.T) {
	dir := sharedData(t, "us-core")
	want := countByType(t, dir)
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			// Lenient, every resource loads.
			st := b.Open(t)
			base, token := server(t, st)
			sink, err := NewHTTP(base, HTTPOptions{Token: token, Lenient: true})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := Run(t.Context(), sink, []string{dir}, Options{Workers: 4})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Loaded != total(want) || sum.Failed != 0 || sum.Files != 5 {
				var buf strings.Builder
				sum.Print(&buf)
				t.Fatalf("got %s, want %d resources from 5 files loaded", buf.String(), total(want))
			}
			checkCounts(t, st, want)
		})
	}
}

// The us-core set is not quite strict R4: one Observation of
// uscore_bundle_patient_355.json has effectivePeriod.stop (Period has only
// start and end). Strictly, that transaction must fail whole, and the
// summary must say exactly where and why; the other four load.
func TestImportStrictReportsTheInvalidBundleAndLoadsTheOthers(t *testing.T) {
	dir := sharedData(t, "us-core")
	st := backend.OpenSQLiteForTest(t)
	base, token := server(t, st)
	sink, err := NewHTTP(base, HTTPOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(t.Context(), sink, []string{dir}, Options{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Loaded != 748-473 || sum.Failed != 473 || len(sum.Failures) != 1 {
		t.Fatalf("got loaded %d failed %d %v, want 275 loaded and uscore_bundle_patient_355.json's 473 failed", sum.Loaded, sum.Failed, sum.Failures)
	}
	f := sum.Failures[0]
	if filepath.Base(f.File) != "uscore_bundle_patient_355.json" || !strings.HasPrefix(f.Reason, "HTTP 400: ") ||
		!strings.Contains(f.Reason, "Bundle.entry[266].resource.effectivePeriod.stop") {
		t.Errorf("failure: got %v, want the 400 naming Bundle.entry[266].resource.effectivePeriod.stop", f)
	}
	if got := stored(t, st, "Patient"); got != 3 {
		t.Errorf("store holds %d patients, want the 3 of the valid bundles (85, 907, 908)", got)
	}
}

func TestImportUSCoreIntoALocalStore(t *testing.T) {
	dir := sharedData(t, "us-core")
	want := countByType(t, dir)
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			sum, err := Run(t.Context(), NewLocal(st, true, ""), []string{dir}, Options{Workers: 4})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Loaded != total(want) || sum.Failed != 0 {
				var buf strings.Builder
				sum.Print(&buf)
				t.Fatalf("got %s, want %d resources loaded", buf.String(), total(want))
			}
			checkCounts(t, st, want)
		})
	}
}

func TestOpenLocalUsesTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLocal(t.Context(), dir, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(t.Context(), l, []string{write(t, t.TempDir(), "p.ndjson", `{"resourceType":"Patient","id":"a"}`)}, Options{})
	if err != nil || sum.Loaded != 1 {
		t.Fatalf("got %+v, %v, want one resource loaded", sum, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sharedcare.db")); err != nil {
		t.Errorf("no SQLite store in the data directory: %v", err)
	}
}

// ndjsonMixed has one resource the server refuses (strict: an unknown
// element) between good ones.
const ndjsonMixed = `{"resourceType":"Patient","id":"good1","gender":"female"}
{"resourceType":"Patient","id":"bad","gender":"female","favouriteColour":"blue"}
{"resourceType":"Patient","id":"good2","birthDate":"1970-01-01"}
`

func TestImportReportsEachRefusedResourceAndLoadsTheRest(t *testing.T) {
	st := backend.OpenSQLiteForTest(t)
	base, token := server(t, st)
	sink, err := NewHTTP(base, HTTPOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	path := write(t, t.TempDir(), "mixed.ndjson", ndjsonMixed)
	sum, err := Run(t.Context(), sink, []string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Loaded != 2 || sum.Failed != 1 || len(sum.Failures) != 1 {
		t.Fatalf("got loaded %d failed %d %v, want 2 loaded and 1 failure", sum.Loaded, sum.Failed, sum.Failures)
	}
	f := sum.Failures[0]
	if f.File != path || f.Entry != "line 2" || !strings.Contains(f.Reason, "(at Patient.favouriteColour)") || strings.Contains(f.Reason, "entry 1") {
		t.Errorf("failure: got %v, want line 2 with the server's diagnostics at Patient.favouriteColour (no bundle entry numbers of the loader's own bundle)", f)
	}
	if sum.Err() == nil {
		t.Error("a run with a failure must end in an error (non-zero exit)")
	}
	if got := stored(t, st, "Patient"); got != 2 {
		t.Errorf("store holds %d patients, want 2", got)
	}

	// Lenient: the same file loads whole, the unknown element dropped.
	lenient, _ := NewHTTP(base, HTTPOptions{Token: token, Lenient: true})
	sum, err = Run(t.Context(), lenient, []string{path}, Options{})
	if err != nil || sum.Loaded != 3 || sum.Failed != 0 {
		t.Fatalf("lenient: got %+v, %v, want 3 loaded", sum, err)
	}
	// Ids are kept (PUT), so the rerun did not duplicate the two good ones.
	if got := stored(t, st, "Patient"); got != 3 {
		t.Errorf("after the lenient rerun the store holds %d patients, want 3", got)
	}
	v, err := st.Read(context.Background(), "Patient", "bad")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(v.Body), "favouriteColour") {
		t.Errorf("lenient load kept the unknown element: %s", v.Body)
	}
}

func TestImportWithABadTokenStopsWithUnauthorized(t *testing.T) {
	st := backend.OpenSQLiteForTest(t)
	base, _ := server(t, st)
	sink, _ := NewHTTP(base, HTTPOptions{Token: "not-a-token"})
	_, err := Run(t.Context(), sink, []string{write(t, t.TempDir(), "p.ndjson", `{"resourceType":"Patient","id":"a"}`)}, Options{})
	if !fhir.IsKind(err, fhir.EUnauthorized) {
		t.Errorf("got %v, want EUnauthorized", err)
	}
}

// A generated region (issue 3) is the import's main customer: every
// organisation's folder, in either layout, must load strictly with nothing
// refused.
func TestImportAGeneratedRegionStrictly(t *testing.T) {
	for _, format := range []synth.Format{synth.NDJSON, synth.Bundle} {
		t.Run(string(format), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "region")
			gen, err := synth.Generate(t.Context(), dir, synth.Options{People: 150, Seed: 7, Format: format})
			if err != nil {
				t.Fatal(err)
			}
			st := backend.OpenSQLiteForTest(t)
			base, token := server(t, st)
			sink, _ := NewHTTP(base, HTTPOptions{Token: token})
			sum, err := Run(t.Context(), sink, []string{dir}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Loaded != gen.Resources || sum.Failed != 0 {
				var buf strings.Builder
				sum.Print(&buf)
				t.Fatalf("got %s, want all %d generated resources loaded", buf.String(), gen.Resources)
			}
		})
	}
}

func TestImportWithGzippedRequestBodies(t *testing.T) {
	st := backend.OpenSQLiteForTest(t)
	base, token := server(t, st)
	sink, _ := NewHTTP(base, HTTPOptions{Token: token, Gzip: true})
	valid := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"fullUrl":"urn:uuid:8a4f2a9e-0c1d-4c3b-9a57-2f6a1f0e9b11","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
	  {"resource":{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"urn:uuid:8a4f2a9e-0c1d-4c3b-9a57-2f6a1f0e9b11"}},"request":{"method":"POST","url":"Observation"}}]}`
	sum, err := Run(t.Context(), sink, []string{write(t, t.TempDir(), "p.ndjson", ndjsonMixed), write(t, t.TempDir(), "t.json.gz", valid)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Loaded != 4 || sum.Failed != 1 {
		t.Errorf("got loaded %d failed %d (%v), want 4 loaded and the unknown element refused", sum.Loaded, sum.Failed, sum.Failures)
	}
}
