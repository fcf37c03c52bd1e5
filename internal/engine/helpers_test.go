package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

const testBase = "http://sharedcare.test/fhir"

// onEveryBackend runs fn against a fresh engine on every test backend.
func onEveryBackend(t *testing.T, fn func(t *testing.T, e *Engine, st store.Store)) {
	t.Helper()
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			fn(t, New(st, Config{BaseURL: testBase}), st)
		})
	}
}

// dataRoot is ../shared/data next to the module root ("" if the root is
// not found).
func dataRoot() string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "data")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// sharedData returns ../shared/data/sub relative to the module root, or
// skips the test when the shared data is absent (a fresh clone).
func sharedData(t testing.TB, sub string) string {
	t.Helper()
	p := filepath.Join(dataRoot(), sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s is absent (it sits next to the repository as ../shared): %v", p, err)
	}
	return p
}

// readData reads a data file, gunzipping *.gz.
func readData(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return b
}

func obj(t testing.TB, s string) fhir.Object {
	t.Helper()
	o, err := fhir.ParseObject([]byte(s), 0)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return o
}

func parseBody(t testing.TB, b []byte) fhir.Object {
	t.Helper()
	o, err := fhir.ParseObject(b, 0)
	if err != nil {
		t.Fatalf("parse stored body: %v\n%s", err, b)
	}
	return o
}

// reparse turns a value holding json.RawMessage (as engine results do) into
// plain parsed JSON.
func reparse(t testing.TB, v fhir.Object) fhir.Object {
	t.Helper()
	return parseBody(t, fhir.Marshal(v))
}

// wantKind fails unless err is an *fhir.Error of kind k.
func wantKind(t testing.TB, err error, k fhir.Kind) {
	t.Helper()
	if fhir.KindOf(err) != k {
		t.Fatalf("got error %v (kind %q), want kind %q", err, fhir.KindOf(err), k)
	}
}

func mustCreate(t testing.TB, e *Engine, typ, body string) *store.Version {
	t.Helper()
	out, err := e.Create(context.Background(), typ, []byte(body), WriteOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", typ, err)
	}
	return out.Version
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
