package fhirpath

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// sharedDir returns ../shared/sub next to the module root, or skips the
// test when the shared folder is absent (a fresh clone).
func sharedDir(t testing.TB, sub string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
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
	p := filepath.Join(filepath.Dir(dir), "shared", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s is absent (it sits next to the repository as ../shared): %v", p, err)
	}
	return p
}

// fixedNow is the clock of the tests.
var fixedNow = time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)
