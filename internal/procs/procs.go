// Package procs sizes the Go scheduler for a serving node and tells the
// rest of the node how many cores it has.
//
// A node's requests spend much of their time in blocking system calls: the
// audit spool's fdatasync (170 us alone on the benchmark machine's virtual
// disk, milliseconds under load), the SQLite stores' file writes and syncs,
// the socket writes of responses. A
// goroutine in such a call keeps its scheduler slot (a P) until the
// runtime's monitor hands the slot on, and needs one back when the call
// returns. With as many Ps as cores, measured on two cores under 32
// clients, audited reads left a quarter of the machine idle or waiting on
// I/O while requests queued for a P; with twice as many Ps the same node
// served a quarter to a third more audited reads (docs/BENCHMARKS.md,
// issue 7). The price is paid by reads without an audit, which a node
// never serves: on PostgreSQL 8-15% fewer, on SQLite as many with a longer
// tail.
//
// So a serving node runs with twice as many Ps as cores (ForServing), and
// everything that sizes itself to the cores (search slots, reader pools,
// worker counts) asks Cores, not runtime.GOMAXPROCS.
package procs

import (
	"os"
	"runtime"
)

// cores is GOMAXPROCS as the runtime chose it at start: the CPUs this
// process may use (its affinity, or a cgroup CPU limit), or the GOMAXPROCS
// environment variable when that is set.
var cores = runtime.GOMAXPROCS(0)

// Cores is how many cores this process may use.
func Cores() int { return cores }

// ForServing sets GOMAXPROCS for a serving node, twice the cores, unless
// the GOMAXPROCS environment variable chose a value; it returns the value
// in effect.
func ForServing() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(2 * cores)
	return 2 * cores
}
