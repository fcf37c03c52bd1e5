package api_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/loadgen"
	"github.com/sharedcare/sharedcare/internal/procs"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkAccessCostHTTP is issue 6's cost figure as throughput: read by
// id and search by subject over HTTP on loopback, from one node, as the
// node operator (no access control) and as a GP clinician whose filter
// carries the practice's whole registered list (2,000 people), the sharing
// agreements and the labels. Both are driven by the load generator of
// `sharedcare bench read` (closed loop, 32 clients, each its own
// keep-alive connection) in alternating runs, so that both see the same
// machine: on this shared two-core machine single runs of a few seconds
// moved by 10-20%. "with/without" is the requests served with access
// control over those served without, summed over every round; the lowest
// and highest single round's ratio show the spread. No audit log: its
// cost is issue 7's figure (BenchmarkAuditCostHTTP).
//
// SHAREDCARE_BENCH_HTTP_SECONDS sets each run's measured time (default 2),
// SHAREDCARE_BENCH_ROUNDS the rounds (default 16: with 8, whole runs' ratios
// moved by 0.05 or more either way), SHAREDCARE_BENCH_PEOPLE
// the patients seeded (default 2,000, two observations each). Run with
// -benchtime 1x: each run is timed by duration, not b.N.
func BenchmarkAccessCostHTTP(b *testing.B) {
	people := benchSetting("SHAREDCARE_BENCH_PEOPLE", 2000)
	secs := benchSetting("SHAREDCARE_BENCH_HTTP_SECONDS", 2)
	rounds := benchSetting("SHAREDCARE_BENCH_ROUNDS", 16)
	const clients = 32
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			_, n := benchNode(b, be, people)
			var reads, searches []string
			for i := range people {
				reads = append(reads, fmt.Sprintf("Observation/bp%d-o0", i), fmt.Sprintf("Observation/bp%d-o1", i))
				searches = append(searches, fmt.Sprintf("Observation?subject=Patient/bp%d", i))
			}
			tokens := [2]string{n.token, strings.TrimPrefix(n.tokens["gp-clinician"], "Bearer ")}
			run := func(paths []string, token string) *loadgen.Result {
				return loadRun(b, loadgen.Config{BaseURL: n.base, Token: token, Paths: paths, Clients: clients,
					Duration: time.Duration(secs) * time.Second, Warmup: 500 * time.Millisecond})
			}
			for _, kind := range []struct {
				name  string
				paths []string
			}{{"read", reads}, {"search", searches}} {
				b.Run(kind.name, func(b *testing.B) {
					servingProcs(b)
					var total [2]int
					lo, hi := math.Inf(1), 0.0
					for round := range rounds {
						var got [2]float64
						// Alternate which goes first, so that neither always
						// follows the other.
						for k := range 2 {
							who := k ^ round&1
							res := run(kind.paths, tokens[who])
							total[who] += res.Requests
							got[who] = res.Throughput()
						}
						lo, hi = min(lo, got[1]/got[0]), max(hi, got[1]/got[0])
					}
					elapsed := float64(rounds * secs)
					b.ReportMetric(float64(total[0])/elapsed, "req/s-without")
					b.ReportMetric(float64(total[1])/elapsed, "req/s-with")
					b.ReportMetric(float64(total[1])/float64(total[0]), "with/without")
					b.ReportMetric(lo, "lowest-round")
					b.ReportMetric(hi, "highest-round")
				})
			}
		})
	}
}

// servingProcs runs the rest of b with the scheduler and the collector set
// as `sharedcare serve` sets them (procs.ForServing), so that a figure
// measured here is the node's. The testing package sets GOMAXPROCS before
// each leaf benchmark (its -cpu list), so a leaf calls this itself.
func servingProcs(b *testing.B) {
	old := runtime.GOMAXPROCS(0)
	gc, limit := procs.GCPercent(), debug.SetMemoryLimit(-1)
	procs.ForServing()
	b.Cleanup(func() {
		runtime.GOMAXPROCS(old)
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	})
}

// benchSetting is the integer in the environment variable name, or def.
func benchSetting(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		fmt.Sscan(v, &def)
	}
	return def
}

// benchNode opens be's store with access control and seeds a practice of
// people (seedPeople), then has the store analyze its tables: a running
// node is measured in its steady state, where PostgreSQL's autovacuum has
// analyzed the tables loaded a moment ago.
func benchNode(b *testing.B, be backend.Named, people int) (store.Store, *accessNode) {
	st := be.Open(b)
	n := startAccessNode(b, st)
	seedPeople(b, n, people)
	if a, ok := st.(store.Analyzer); ok {
		if err := a.Analyze(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return st, n
}

// loadRun runs the load generator's read benchmark and fails b if any
// request failed.
func loadRun(b *testing.B, cfg loadgen.Config) *loadgen.Result {
	res, err := loadgen.Read(context.Background(), loadgen.NewClient(cfg.Clients, false), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if res.Errors > 0 {
		b.Fatalf("%s: %d of %d requests failed: %v", cfg.BaseURL, res.Errors, res.Requests, res.Status)
	}
	return res
}

// reportSteal reports the share of the machine's CPU the host took during
// a run: on a virtual machine a run's tail is worth reading only beside it.
func reportSteal(b *testing.B, res *loadgen.Result) {
	if res.MachineKnown {
		b.ReportMetric(100*res.Machine.Steal, "steal-%")
	}
}
