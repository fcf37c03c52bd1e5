package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// benchBody is a ~1 KB resource body.
var benchBody = []byte(`{"resourceType":"Observation","id":"x","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00.000Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"Patient/0b1ad0f9-2a4c-4d0e-9c6a-3d5b2e8f7a61"},"encounter":{"reference":"Encounter/7e5b2c1d-8f3a-4b6e-a1d9-0c2f4e6a8b13"},"effectiveDateTime":"2019-02-07T11:45:12+00:00","issued":"2019-02-07T11:45:12.123+00:00","valueQuantity":{"value":172.5,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"},"note":[{"text":"` + strings.Repeat("padding ", 50) + `"}]}`)

func benchIndex(i int) store.Index {
	return store.Index{
		Tokens: []store.Token{
			{Param: "code", System: "http://loinc.org", Code: "8302-2", Text: "Body Height"},
			{Param: "category", System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs"},
			{Param: "status", Code: "final"},
		},
		References: []store.Reference{{Param: "subject", Type: "Patient", ID: fmt.Sprintf("p%d", i%1000)}},
		Dates:      []store.Date{{Param: "date", Lo: 1549539912000, Hi: 1549539912999}},
	}
}

// BenchmarkPut measures ingest: Writes of 300 new ~1 KB resources with 5
// index rows each, from 4 concurrent writers (as 4 concurrent transaction
// bundles do). It reports resources/s.
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b)
			ctx := context.Background()
			const perTx = 300
			var next atomic.Int64
			lu := time.Now().UTC().Truncate(time.Millisecond)
			b.SetParallelism(writers)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			var total atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					base := next.Add(perTx) - perTx
					err := s.Write(ctx, func(tx store.Tx) error {
						for i := range perTx {
							n := int(base) + i
							if err := tx.Put(ctx, &store.Put{Type: "Observation", ID: fmt.Sprintf("o%d", n), VersionID: 1, LastUpdated: lu, Body: benchBody, Index: benchIndex(n)}); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Error(err)
						return
					}
					total.Add(perTx)
				}
			})
			b.ReportMetric(float64(total.Load())/time.Since(start).Seconds(), "resources/s")
			// CPU per resource is the figure to compare on a shared,
			// loaded machine, where wall-clock rates vary from run to run.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(total.Load()), "cpu-µs/resource")
		})
	}
}

// BenchmarkRead measures read by id from many goroutines over 10,000 stored
// resources.
func BenchmarkRead(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	const n = 10000
	lu := time.Now().UTC().Truncate(time.Millisecond)
	for base := 0; base < n; base += 500 {
		err := s.Write(ctx, func(tx store.Tx) error {
			for i := base; i < base+500; i++ {
				if err := tx.Put(ctx, &store.Put{Type: "Observation", ID: fmt.Sprintf("o%d", i), VersionID: 1, LastUpdated: lu, Body: benchBody, Index: benchIndex(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// An HTTP request's context can be cancelled, which costs database/sql
	// a goroutine per query: measure with one like it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.SetParallelism(16) // 32 goroutines on 2 cores, like 32 HTTP clients
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/read") }()
	var k atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := k.Add(7919) % n
			v, err := s.Read(ctx, "Observation", fmt.Sprintf("o%d", i))
			if err != nil || len(v.Body) == 0 {
				b.Errorf("Read o%d: %v", i, err)
				return
			}
		}
	})
}

// BenchmarkSmallWrites measures single-resource Writes from 32 goroutines:
// the case group commit exists for, since each COMMIT costs an fsync.
func BenchmarkSmallWrites(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	var next atomic.Int64
	lu := time.Now().UTC().Truncate(time.Millisecond)
	b.SetParallelism(16)
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/write") }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := int(next.Add(1))
			err := s.Write(ctx, func(tx store.Tx) error {
				return tx.Put(ctx, &store.Put{Type: "Observation", ID: fmt.Sprintf("o%d", n), VersionID: 1, LastUpdated: lu, Body: benchBody, Index: benchIndex(n)})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
