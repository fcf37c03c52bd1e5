package validate

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// sharedData returns the directory of the shared test data (../shared/data
// relative to the module root), skipping the test when it is absent, as it is
// in a user's fresh clone.
func sharedData(t testing.TB, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "data", sub)
	if _, err := os.Stat(d); err != nil {
		t.Skipf("shared test data %s is absent (it lives next to the repository in CI): %v", d, err)
	}
	return d
}

// readBody reads a JSON file, gunzipping .gz files.
func readBody(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = gz
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// entries returns the resources of a bundle, or the resource itself.
func entries(r fhir.Object) []fhir.Object {
	if fhir.ResourceType(r) != "Bundle" {
		return []fhir.Object{r}
	}
	var out []fhir.Object
	list, _ := r["entry"].([]any)
	for _, e := range list {
		if e, ok := e.(fhir.Object); ok {
			if res, ok := e["resource"].(fhir.Object); ok {
				out = append(out, res)
			}
		}
	}
	return out
}

// knownUSCoreDefects are the errors the US Core bundles really contain, each
// checked by hand against the R4 definitions. The test requires exactly these
// and nothing else, so a validator regression and a fixed data set both show.
var knownUSCoreDefects = map[string]string{
	// Period has start and end; "stop" is not an R4 element (Synthea's
	// CSV exporter's column name leaking into FHIR).
	"uscore_bundle_patient_355.json Observation.effectivePeriod.stop": "unknown element",
}

// knownBundleDefect reports whether an issue of a whole bundle is one of the
// known defects of a resource inside it.
func knownBundleDefect(file, expr string) bool {
	rel := strings.TrimPrefix(stripIndexes(expr), "Bundle.entry.resource.")
	for key := range knownUSCoreDefects {
		f, path, _ := strings.Cut(key, " ")
		if f == file && strings.HasSuffix(path, "."+rel) {
			return true
		}
	}
	return false
}

func TestUSCoreValidatesStrictly(t *testing.T) {
	dir := sharedData(t, "us-core")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no bundles in %s", dir)
	}
	n := 0
	found := map[string]bool{}
	for _, path := range files {
		bundle, err := fhir.ParseObject(readBody(t, path), 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		base := filepath.Base(path)
		// The bundle as a whole, then each resource as the engine sees it.
		if _, err := Resource(fhir.Clone(bundle).(fhir.Object), Options{}); err != nil {
			for _, is := range err.(*fhir.Error).Issues {
				if !knownBundleDefect(base, is.Expression) {
					t.Errorf("%s: bundle: %s: %s", base, is.Expression, is.Diagnostics)
				}
			}
		}
		for _, r := range entries(bundle) {
			n++
			warnings, err := Resource(r, Options{})
			if err != nil {
				for _, is := range err.(*fhir.Error).Issues {
					key := base + " " + stripIndexes(is.Expression)
					if want, known := knownUSCoreDefects[key]; known && strings.Contains(is.Diagnostics, want) {
						found[key] = true
						continue
					}
					t.Errorf("%s: %s/%s: %s: %s", base, fhir.ResourceType(r), fhir.ID(r), is.Expression, is.Diagnostics)
				}
			}
			if len(warnings) > 0 {
				t.Errorf("%s: strict validation gave warnings: %v", filepath.Base(path), warnings)
			}
		}
	}
	for key := range knownUSCoreDefects {
		if !found[key] {
			t.Errorf("known defect %q was not reported", key)
		}
	}
	t.Logf("%d US Core resources checked; known defects: %v", n, knownUSCoreDefects)
}

// TestSyntheaValidatesLeniently checks every Synthea resource passes with
// lenient handling, and lists the unknown elements it drops.
func TestSyntheaValidatesLeniently(t *testing.T) {
	dir := sharedData(t, "synthea-r4")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if len(files) == 0 {
		t.Fatalf("no bundles in %s", dir)
	}
	if testing.Short() {
		files = files[:10]
	}
	dropped := map[string]int{}
	n, failed := 0, 0
	for _, path := range files {
		bundle, err := fhir.ParseObject(readBody(t, path), 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, r := range entries(bundle) {
			n++
			warnings, err := Resource(r, Options{Lenient: true})
			if err != nil {
				failed++
				if failed <= 20 {
					t.Errorf("%s: %s/%s: %v", filepath.Base(path), fhir.ResourceType(r), fhir.ID(r), describe(err))
				}
			}
			for _, w := range warnings {
				dropped[stripIndexes(w.Expression)]++
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d Synthea resources failed lenient validation", failed, n)
	}
	if len(dropped) == 0 {
		t.Logf("no unknown elements dropped: these Synthea bundles are valid strictly too")
	}
	keys := make([]string, 0, len(dropped))
	for k := range dropped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("dropped %-50s %d times", k, dropped[k])
	}
	t.Logf("%d Synthea resources valid (lenient)", n)
}

// TestPDSExamplesValidate checks the NHS PDS example payloads, which carry
// NHS numbers, validate strictly.
func TestPDSExamplesValidate(t *testing.T) {
	dir := sharedData(t, "pds-examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	checked := 0
	for _, path := range files {
		body := readBody(t, path)
		if len(body) > 0 && body[0] != '{' && body[0] != '[' && !strings.Contains(string(body), "{") {
			// Some copies of the PDS repository hold git symlink
			// placeholders (a relative path) instead of the payloads.
			t.Logf("%s is not JSON (a symlink placeholder: %q); skipped", filepath.Base(path), body)
			continue
		}
		bundle, err := fhir.ParseObject(body, 0)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for _, r := range entries(bundle) {
			checked++
			if _, err := Resource(r, Options{}); err != nil {
				t.Errorf("%s: %s: %v", filepath.Base(path), fhir.ResourceType(r), describe(err))
			}
		}
	}
	if checked == 0 {
		t.Skipf("no PDS example in %s holds JSON", dir)
	}
}

func describe(err error) string {
	e, ok := err.(*fhir.Error)
	if !ok {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(string(e.Kind))
	for _, is := range e.Issues {
		b.WriteString("\n\t" + is.Expression + ": " + is.Code + ": " + is.Diagnostics)
	}
	return b.String()
}

// stripIndexes turns Observation.component[1].foo into Observation.component.foo.
func stripIndexes(s string) string {
	var b strings.Builder
	skip := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '[':
			skip = true
		case s[i] == ']':
			skip = false
		case !skip:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
