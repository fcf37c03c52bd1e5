package engine

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkCreate is one small create per operation on SQLite.
func BenchmarkCreate(b *testing.B) {
	e := New(backend.OpenSQLiteForTest(b), Config{BaseURL: testBase})
	body := []byte(patientJSON)
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.Create(ctx, "Patient", body, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBundleSynthea loads real Synthea transaction bundles through
// Engine.Bundle on SQLite, with 1 and 4 concurrent transactions, and
// reports resources per second (the ingest target over HTTP is
// 3,000/s on SQLite; the engine must leave room for HTTP on top).
func BenchmarkBundleSynthea(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(sharedData(b, "synthea-r4"), "*.json.gz"))
	if len(files) > 40 {
		files = files[:40]
	}
	bodies := make([][]byte, len(files))
	counts := make([]int, len(files))
	for i, f := range files {
		bodies[i] = readData(b, f)
		counts[i] = len(parseBody(b, bodies[i])["entry"].([]any))
	}
	benchBundles(b, bodies, counts)
}

// BenchmarkBundleSyntheaConditional is BenchmarkBundleSynthea with the
// bundles shaped as current Synthea sends them: Organization and
// Practitioner as conditional creates (ifNoneExist on their identifier), so
// that every bundle after the first finds them and most entries refer to a
// conditional entry.
func BenchmarkBundleSyntheaConditional(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(sharedData(b, "synthea-r4"), "*.json.gz"))
	if len(files) > 40 {
		files = files[:40]
	}
	bodies := make([][]byte, len(files))
	counts := make([]int, len(files))
	for i, f := range files {
		bundle := parseBody(b, readData(b, f))
		entries := bundle["entry"].([]any)
		for _, en := range entries {
			r := en.(fhir.Object)["resource"].(fhir.Object)
			if rt := r["resourceType"]; rt != "Organization" && rt != "Practitioner" {
				continue
			}
			id := r["identifier"].([]any)[0].(fhir.Object)
			en.(fhir.Object)["request"].(fhir.Object)["ifNoneExist"] = "identifier=" + id["system"].(string) + "|" + id["value"].(string)
		}
		bodies[i] = fhir.Marshal(bundle)
		counts[i] = len(entries)
	}
	benchBundles(b, bodies, counts)
}

func benchBundles(b *testing.B, bodies [][]byte, counts []int) {
	for _, workers := range []int{1, 4} {
		b.Run(map[int]string{1: "1", 4: "4"}[workers]+"tx", func(b *testing.B) {
			for _, nb := range backend.ForTests(b) {
				b.Run(nb.Name, func(b *testing.B) {
					e := New(nb.Open(b), Config{BaseURL: testBase, Lenient: true})
					ctx := context.Background()
					var next, resources atomic.Int64
					cpu0 := processCPU()
					b.ResetTimer()
					var wg sync.WaitGroup
					for range workers {
						wg.Go(func() {
							for {
								i := int(next.Add(1)) - 1
								if i >= b.N {
									return
								}
								k := i % len(bodies)
								if _, err := e.Bundle(ctx, bodies[k], WriteOptions{}); err != nil {
									b.Error(err)
									return
								}
								resources.Add(int64(counts[k]))
							}
						})
					}
					wg.Wait()
					b.ReportMetric(float64(resources.Load())/b.Elapsed().Seconds(), "resources/s")
					// CPU per resource (this process: engine and, for SQLite,
					// the store) says what the machine could do when it is not
					// shared with other work: 2 cores / cpu-µs.
					b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(resources.Load()), "cpu-µs/resource")
				})
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
