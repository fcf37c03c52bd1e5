package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/loadgen"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkAuditCostHTTP is issue 7's cost figure: read-by-id throughput
// over HTTP on loopback, with access control on (a GP clinician reading
// observations of the practice's patients), from one node's store served
// twice in the same process: once without an audit log and once
// recording every read durably in the real audit.Log. Both are driven by
// the load generator of `sharedcare bench read` (closed loop, each client
// its own keep-alive connection), for 32 and 64 clients, alternating
// without/with twice so that both halves see the same machine. req/s is
// each run's throughput; "with/without" on a with-run is its throughput
// over the without-run just before it.
//
// SHAREDCARE_BENCH_HTTP_SECONDS sets each run's measured time (default 5);
// SHAREDCARE_BENCH_PEOPLE the patients seeded (default 2,000, two
// observations each). Run with -benchtime 1x: each run is timed by
// duration, not b.N.
func BenchmarkAuditCostHTTP(b *testing.B) {
	people := benchSetting("SHAREDCARE_BENCH_PEOPLE", 2000)
	secs := benchSetting("SHAREDCARE_BENCH_HTTP_SECONDS", 5)
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			n, serve, l := auditBenchNode(b, be, people)
			audited := serve(func(h http.Handler) http.Handler { return api.Audited(h, l, "bench") })

			ids := seededObservations(people)
			token := strings.TrimPrefix(n.tokens["gp-clinician"], "Bearer ")
			run := func(base string, clients int) *loadgen.Result {
				return loadRun(b, loadgen.Config{BaseURL: base, Token: token, Type: "Observation", IDs: ids,
					Clients: clients, Duration: time.Duration(secs) * time.Second, Warmup: time.Second})
			}
			for round := range 2 {
				for _, clients := range []int{32, 64} {
					var without float64
					b.Run(fmt.Sprintf("clients-%d/without#%d", clients, round), func(b *testing.B) {
						servingProcs(b)
						res := run(n.base, clients)
						without = res.Throughput()
						b.ReportMetric(without, "req/s")
						b.ReportMetric(float64(res.Percentile(99).Microseconds()), "p99-µs")
						reportSteal(b, res)
					})
					b.Run(fmt.Sprintf("clients-%d/with#%d", clients, round), func(b *testing.B) {
						servingProcs(b)
						res := run(audited, clients)
						b.ReportMetric(res.Throughput(), "req/s")
						b.ReportMetric(float64(res.Percentile(99).Microseconds()), "p99-µs")
						reportSteal(b, res)
						if without > 0 {
							b.ReportMetric(res.Throughput()/without, "with/without")
						}
					})
				}
			}
		})
	}
}
