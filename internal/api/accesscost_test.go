package api_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/loadgen"
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
// SHAREDCARE_BENCH_ROUNDS the rounds (default 8), SHAREDCARE_BENCH_PEOPLE
// the patients seeded (default 2,000, two observations each). Run with
// -benchtime 1x: each run is timed by duration, not b.N.
func BenchmarkAccessCostHTTP(b *testing.B) {
	people := 2000
	if v := os.Getenv("SHAREDCARE_BENCH_PEOPLE"); v != "" {
		fmt.Sscan(v, &people)
	}
	secs, rounds := 2, 8
	if v := os.Getenv("SHAREDCARE_BENCH_HTTP_SECONDS"); v != "" {
		fmt.Sscan(v, &secs)
	}
	if v := os.Getenv("SHAREDCARE_BENCH_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	const clients = 32
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			st := be.Open(b)
			n := startAccessNode(b, st)
			seedPeople(b, n, people)
			if a, ok := st.(store.Analyzer); ok {
				if err := a.Analyze(ctx); err != nil {
					b.Fatal(err)
				}
			}
			var reads, searches []string
			for i := range people {
				reads = append(reads, fmt.Sprintf("Observation/bp%d-o0", i), fmt.Sprintf("Observation/bp%d-o1", i))
				searches = append(searches, fmt.Sprintf("Observation?subject=Patient/bp%d", i))
			}
			tokens := [2]string{n.token, strings.TrimPrefix(n.tokens["gp-clinician"], "Bearer ")}
			run := func(paths []string, token string) *loadgen.Result {
				c := loadgen.NewClient(clients, false)
				res, err := loadgen.Read(ctx, c, loadgen.Config{BaseURL: n.base, Token: token, Paths: paths,
					Clients: clients, Duration: time.Duration(secs) * time.Second, Warmup: 500 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				if res.Errors > 0 {
					b.Fatalf("%d of %d requests failed: %v", res.Errors, res.Requests, res.Status)
				}
				return res
			}
			for _, kind := range []struct {
				name  string
				paths []string
			}{{"read", reads}, {"search", searches}} {
				b.Run(kind.name, func(b *testing.B) {
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
