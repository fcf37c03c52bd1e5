package ingest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// sharedData returns the shared test data folder name (../shared/data/name
// relative to the repository root), skipping the test when it is absent, as
// in a user's fresh clone.
func sharedData(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared test data %s is absent (it lives beside the repository as ../shared): %v", dir, err)
	}
	return dir
}
