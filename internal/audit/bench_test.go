package audit_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkRecord measures durable Records from concurrent callers (as
// the API records one per request), on every store, up to every entry
// moved into the log (the timing ends after a Flush): ns/op is the
// throughput cost per entry, entries/write how many group commit put in
// one spool write, entries/move how many the mover put in one transaction.
func BenchmarkRecord(b *testing.B) {
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Open(b)
			l, err := audit.Open(context.Background(), st, b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			e := entry("dr-a", "A81001", []string{"p1"})
			b.SetParallelism(recordParallelism) // goroutines per core: a busy server
			start, moves := audit.Batches(l), audit.Moves(l)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c := *e
					c.Patients = []string{fmt.Sprintf("p%d", i%1000)}
					if err := l.Record(context.Background(), &c); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			if err := l.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := audit.Batches(l) - start; n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "entries/write")
			}
			if n := audit.Moves(l) - moves; n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "entries/move")
			}
		})
	}
}

// recordParallelism is BenchmarkRecord's callers per core; group commit's
// batches, and so the throughput, grow with the callers waiting.
// SHAREDCARE_BENCH_AUDIT_PAR overrides it.
var recordParallelism = func() int {
	if n, err := strconv.Atoi(os.Getenv("SHAREDCARE_BENCH_AUDIT_PAR")); err == nil && n > 0 {
		return n
	}
	return 8
}()

// BenchmarkVerify measures audit.Verify over a log of 20,000 entries on
// every store (entries/s is the figure: verify reads and rehashes all).
func BenchmarkVerify(b *testing.B) {
	const n = 20000
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			st := be.Open(b)
			l, err := audit.Open(ctx, st, b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 64)
			for w := range 64 {
				go func() {
					for i := w; i < n; i += 64 {
						e := entry(fmt.Sprintf("u%d", i%50), "A81001", []string{fmt.Sprintf("p%d", i%1000)})
						if err := l.Record(ctx, e); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
			}
			for range 64 {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Close(ctx); err != nil {
				b.Fatal(err)
			}
			as := st.(store.AuditStore)
			b.ResetTimer()
			for range b.N {
				r, err := audit.Verify(ctx, as, note.VerifierList(l.Verifier()), nil)
				if err != nil || !r.OK() || r.Entries != n {
					b.Fatalf("verify: %v %+v", err, r)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
