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
	"runtime/debug"
)

// cores is GOMAXPROCS as the runtime chose it at start: the CPUs this
// process may use (its affinity, or a cgroup CPU limit), or the GOMAXPROCS
// environment variable when that is set.
var cores = runtime.GOMAXPROCS(0)

// Cores is how many cores this process may use.
func Cores() int { return cores }

// ForServing sizes the runtime for a serving node: GOMAXPROCS at twice the
// cores, unless the GOMAXPROCS environment variable chose a value, and the
// garbage collector as servingGC says. It returns the GOMAXPROCS in effect.
func ForServing() int {
	servingGC()
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(2 * cores)
	return 2 * cores
}

// ServingGCPercent is a serving node's GOGC: the heap may grow to five
// times what is live before the collector runs, instead of twice.
//
// Why: each collection stops every goroutine twice, and on the benchmark
// machine (two virtual cores, twice as many Ps, busy at 5,000 audited reads
// a second) a collection's stops took 0.2-0.7 ms at the median and 1.2-2.9
// ms at the 90th percentile, about two collections a second, every request
// in flight waiting through each. At 400 the collections are about a
// quarter as many, and the p99 of audited reads at 5,000/s fell from 5.4 to
// 4.2 ms in-process and from 8.7 to 7.2 ms over `sharedcare serve` (medians
// of runs the host did not disturb; docs/BENCHMARKS.md, the sections on
// fewer collections under issues 2 and 7). The price is memory: with 40 MB
// live, the heap grows to about 190 MB between collections instead of 80,
// bounded by the memory limit below. Higher buys nothing measured: over
// `serve`, no collections at all (GOGC=off) left that p99 where it was.
const ServingGCPercent = 400

// servingGC sets the collector for serving unless the operator chose:
// GOGC to ServingGCPercent, and the soft memory limit to half the memory
// this process may use (the machine's, or its cgroup's limit when lower),
// so that a node with a large live heap collects more often rather than
// growing to five times it. An operator's GOGC or GOMEMLIMIT is left alone.
func servingGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(ServingGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if m := memoryAvailable(); m > 0 {
			debug.SetMemoryLimit(m / 2)
		}
	}
}

// GCPercent is the collector's GOGC in effect. The runtime has no getter:
// it is read by setting a value and setting it back at once.
func GCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
