package procs

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestForServingDoublesTheCores(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "")
	if got := ForServing(); got != 2*Cores() || runtime.GOMAXPROCS(0) != 2*Cores() {
		t.Fatalf("ForServing: returned %d, GOMAXPROCS %d; want %d (cores %d)", got, runtime.GOMAXPROCS(0), 2*Cores(), Cores())
	}
	// Cores stays what the runtime chose at start.
	if Cores() != cores || Cores() < 1 {
		t.Fatalf("Cores() = %d after ForServing", Cores())
	}
}

func TestForServingLeavesAnOperatorsChoice(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3) // what the runtime would have read at start
	if got := ForServing(); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Fatalf("ForServing with GOMAXPROCS=3 in the environment: returned %d, GOMAXPROCS %d", got, runtime.GOMAXPROCS(0))
	}
}

// gcSettings reads the collector's settings without changing them.
func gcSettings() (percent int, limit int64) {
	return GCPercent(), debug.SetMemoryLimit(-1)
}

// restoreGC puts the collector back as it was when the test ends.
func restoreGC(t *testing.T) {
	percent, limit := gcSettings()
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func TestForServingCollectsLessOften(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	restoreGC(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	ForServing()
	percent, limit := gcSettings()
	if percent != ServingGCPercent {
		t.Errorf("GOGC after ForServing: %d, want %d", percent, ServingGCPercent)
	}
	if m := memoryAvailable(); runtime.GOOS == "linux" && (m <= 0 || limit != m/2) {
		t.Errorf("memory limit %d with %d bytes available: want half of them", limit, m)
	}
}

func TestForServingLeavesTheOperatorsCollector(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	restoreGC(t)
	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(50) // what the runtime would have read at start
	debug.SetMemoryLimit(1 << 30)
	ForServing()
	if percent, limit := gcSettings(); percent != 50 || limit != 1<<30 {
		t.Errorf("GOGC %d and memory limit %d after ForServing with both in the environment: want 50 and 1 GiB", percent, limit)
	}
}
