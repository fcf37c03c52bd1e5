package api_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/loadgen"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkAuditFloorHTTP bounds from below what issue 7's cost target
// allows any audit log on this machine. Beside the unaudited node and the
// real audit.Log it serves the same store three more ways:
//
//   - plain: the unaudited handler again, on a server of its own: what
//     the machine's noise alone makes of a ratio;
//   - wait: the unaudited handler behind a wait for a group-committed,
//     durable write of 8 bytes a request (one pwrite and one fdatasync a
//     batch, into a zeroed file, as the spool writes), and nothing else:
//     the least that "no data before its audit entry is durable" costs;
//   - floor: the audited handler (every audit entry collected as the node
//     collects it, the response held until it is durable) over a Recorder
//     that makes each entry durable as those 8 bytes: no AuditEvent, no
//     leaf hash, no index, no store.
//
// Each round runs without, plain, wait, floor and with, in that order, for
// each client count (benchClients); every ratio is over the without-run
// just before it. SHAREDCARE_BENCH_ROUNDS sets the rounds (default 2);
// SHAREDCARE_BENCH_RATE, when set, makes every run open-loop at that many
// requests a second (for the latency at a fixed load, as issue 2's read
// target asks); other settings and flags as BenchmarkAuditCostHTTP.
func BenchmarkAuditFloorHTTP(b *testing.B) {
	people := benchSetting("SHAREDCARE_BENCH_PEOPLE", 2000)
	secs := benchSetting("SHAREDCARE_BENCH_HTTP_SECONDS", 5)
	rate := benchSetting("SHAREDCARE_BENCH_RATE", 0)
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			n, serve, l := auditBenchNode(b, be, people)
			fl := openFloorLog(b, filepath.Join(b.TempDir(), "floor"))
			bases := []struct{ name, base string }{
				{"without", n.base},
				{"plain", serve(func(h http.Handler) http.Handler { return h })},
				{"wait", serve(func(h http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if _, err := fl.wait(r.Context(), 1); err != nil {
							http.Error(w, err.Error(), http.StatusServiceUnavailable)
							return
						}
						h.ServeHTTP(w, r)
					})
				})},
				{"floor", serve(func(h http.Handler) http.Handler { return api.Audited(h, fl, "bench") })},
				{"with", serve(func(h http.Handler) http.Handler { return api.Audited(h, l, "bench") })},
			}

			ids := seededObservations(people)
			token := strings.TrimPrefix(n.tokens["gp-clinician"], "Bearer ")
			for round := range benchSetting("SHAREDCARE_BENCH_ROUNDS", 2) {
				for _, clients := range benchClients(b) {
					var without float64
					for _, v := range bases {
						b.Run(fmt.Sprintf("clients-%d/%s#%d", clients, v.name, round), func(b *testing.B) {
							servingProcs(b)
							n0, w0 := fl.counts()
							res := loadRun(b, loadgen.Config{BaseURL: v.base, Token: token, Type: "Observation", IDs: ids,
								Clients: clients, Duration: time.Duration(secs) * time.Second, Warmup: time.Second, Rate: float64(rate)})
							b.ReportMetric(res.Throughput(), "req/s")
							b.ReportMetric(float64(res.Percentile(50).Microseconds()), "p50-µs")
							b.ReportMetric(float64(res.Percentile(99).Microseconds()), "p99-µs")
							b.ReportMetric(float64(res.Max().Microseconds()), "max-µs")
							reportSteal(b, res)
							if n, w := fl.counts(); w > w0 {
								b.ReportMetric(float64(n-n0)/float64(w-w0), "entries/write")
							}
							if v.name == "without" {
								without = res.Throughput()
							} else if without > 0 {
								b.ReportMetric(res.Throughput()/without, "/without")
							}
						})
					}
				}
			}
		})
	}
}

// benchClients are the client counts in SHAREDCARE_BENCH_CLIENTS
// (comma-separated): by default 1 and 32, the read-by-id figure's, and 64.
func benchClients(b *testing.B) []int {
	v := os.Getenv("SHAREDCARE_BENCH_CLIENTS")
	if v == "" {
		return []int{1, 32, 64}
	}
	var cs []int
	for _, f := range strings.Split(v, ",") {
		var c int
		if _, err := fmt.Sscan(f, &c); err != nil || c < 1 {
			b.Fatalf("SHAREDCARE_BENCH_CLIENTS: %q is not a client count", f)
		}
		cs = append(cs, c)
	}
	return cs
}

// seededObservations are the ids of the observations seedPeople wrote for
// people people.
func seededObservations(people int) []string {
	ids := make([]string, 0, 2*people)
	for i := range people {
		ids = append(ids, fmt.Sprintf("bp%d-o0", i), fmt.Sprintf("bp%d-o1", i))
	}
	return ids
}

// auditBenchNode opens be's store with access control and people seeded
// (benchNode) and an audit log for it. serve starts another server of the
// node's handler over the same store, wrapped (by api.Audited, say), and
// returns its FHIR base URL.
func auditBenchNode(b *testing.B, be backend.Named, people int) (n *accessNode, serve func(wrap func(http.Handler) http.Handler) string, l *audit.Log) {
	ctx := context.Background()
	st, n := benchNode(b, be, people)
	dir := b.TempDir()
	l, err := audit.Open(ctx, st, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(ctx) })
	serve = func(wrap func(http.Handler) http.Handler) string {
		srv := httptest.NewUnstartedServer(nil)
		cfg := config.Default()
		cfg.BaseURL = "http://" + srv.Listener.Addr().String() + "/fhir"
		cfg.DataDir = dir
		eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
		srv.Config.Handler = wrap(api.NewWithAccess(service{eng, st}, n.auth, n.dec, cfg, nil))
		srv.Start()
		b.Cleanup(srv.Close)
		return srv.URL + "/fhir"
	}
	return n, serve, l
}

// floorLog is the least a group-committed durable log can do: callers
// add 8 bytes each and wait; one committer writes everything waiting with
// one pwrite and one fdatasync into a file zeroed beforehand (so that no
// write changes its size or block map), then wakes them all.
type floorLog struct {
	f      *os.File
	linger time.Duration // how long a batch gathers after its first entry (SHAREDCARE_BENCH_FLOOR_LINGER_US)

	mu      sync.Mutex
	buf     []byte
	batch   *floorBatch
	n       int64 // entries taken
	writes  int64 // batches written
	pending chan struct{}
}

type floorBatch struct {
	done chan struct{}
	err  error
}

// floorSize is the floor log's zeroed file; it is written round and round.
const floorSize = 64 << 20

func openFloorLog(b *testing.B, path string) *floorLog {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range floorSize / len(zeros) {
		if _, err := f.Write(zeros); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	l := &floorLog{f: f, linger: time.Duration(benchSetting("SHAREDCARE_BENCH_FLOOR_LINGER_US", 0)) * time.Microsecond,
		batch: &floorBatch{done: make(chan struct{})}, pending: make(chan struct{}, 1)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go l.commit(stop, done)
	b.Cleanup(func() { close(stop); <-done; f.Close() })
	return l
}

// wait adds k entries of 8 bytes (each its index) and returns the first
// index once they are durable.
func (l *floorLog) wait(ctx context.Context, k int) (int64, error) {
	l.mu.Lock()
	first := l.n
	for range k {
		l.buf = binary.LittleEndian.AppendUint64(l.buf, uint64(l.n))
		l.n++
	}
	bt := l.batch
	l.mu.Unlock()
	select {
	case l.pending <- struct{}{}:
	default:
	}
	select {
	case <-bt.done:
		return first, bt.err
	case <-ctx.Done():
		return first, ctx.Err()
	}
}

func (l *floorLog) commit(stop, done chan struct{}) {
	defer close(done)
	var off int64
	var spare []byte
	for {
		select {
		case <-stop:
			return
		case <-l.pending:
		}
		if l.linger > 0 {
			time.Sleep(l.linger)
		}
		l.mu.Lock()
		if len(l.buf) == 0 { // a wake for a batch already written
			l.mu.Unlock()
			continue
		}
		buf, bt := l.buf, l.batch
		l.buf, l.batch = spare[:0], &floorBatch{done: make(chan struct{})}
		l.writes++
		l.mu.Unlock()
		if off+int64(len(buf)) > floorSize {
			off = 0
		}
		_, err := l.f.WriteAt(buf, off)
		if err == nil {
			err = syscall.Fdatasync(int(l.f.Fd()))
		}
		off += int64(len(buf))
		bt.err = err
		close(bt.done)
		spare = buf
	}
}

// counts are the entries taken and the batches written so far.
func (l *floorLog) counts() (entries, writes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.writes
}

// Record makes e durable as 8 bytes: the floor's audit.Recorder.
func (l *floorLog) Record(ctx context.Context, e *audit.Entry) error {
	i, err := l.wait(ctx, 1)
	e.Index = i
	return err
}

// RecordAll makes es durable as 8 bytes each, in one write.
func (l *floorLog) RecordAll(ctx context.Context, es []*audit.Entry) error {
	i, err := l.wait(ctx, len(es))
	for k, e := range es {
		e.Index = i + int64(k)
	}
	return err
}

var _ audit.Recorder = (*floorLog)(nil)
