package synth

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkGenerate measures whole regions written as NDJSON and reports the
// peak Go heap (sampled every 10 ms), to show memory stays flat as the
// number of people grows. SYNTH_BENCH_PEOPLE (comma-free, one size) adds a
// larger size, e.g. 100000.
func BenchmarkGenerate(b *testing.B) {
	sizes := []int{1000, 10000}
	if s := os.Getenv("SYNTH_BENCH_PEOPLE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("people=%d", n), func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				runtime.GC()
				var peak uint64
				var mu sync.Mutex
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					var m runtime.MemStats
					for {
						select {
						case <-stop:
							return
						case <-time.After(10 * time.Millisecond):
						}
						runtime.ReadMemStats(&m)
						mu.Lock()
						peak = max(peak, m.HeapInuse)
						mu.Unlock()
					}
				}()
				if _, err := Generate(context.Background(), dir, Options{People: n, Seed: 1}); err != nil {
					b.Fatal(err)
				}
				close(stop)
				<-done
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			}
		})
	}
}

// BenchmarkPerson measures generating one person's records (no I/O).
func BenchmarkPerson(b *testing.B) {
	g := New(Options{People: 100000, Seed: 1})
	i := 0
	for b.Loop() {
		g.person(i % 100000)
		i++
	}
}
