package procs

import (
	"runtime"
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
