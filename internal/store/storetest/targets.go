package storetest

import (
	"context"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// TargetSamples are query values drawn from a loaded store for issue 4's
// search targets; each backend's benchmark draws them with its own SQL.
type TargetSamples struct {
	Resources         int64
	Identifiers       []string    // system|value of Patient identifiers
	Families          [][2]string // family, birthdate (YYYY-MM-DD)
	PatientCodes      [][2]string // Patient/id, system|code of one of their Observations
	CodeYears         [][3]string // system|code, year, year+1
	EncounterPatients []string    // Patient/id with encounters
	BigPatients       []string    // ids of patients with over 1,000 resources
}

// Check fails b when the samples lack what the targets need.
func (s *TargetSamples) Check(b *testing.B) {
	b.Helper()
	b.Logf("sampled %d identifiers, %d family+birthdate, %d patient+code, %d code+year, %d encounter patients, %d patients over 1,000 resources",
		len(s.Identifiers), len(s.Families), len(s.PatientCodes), len(s.CodeYears), len(s.EncounterPatients), len(s.BigPatients))
	if len(s.Identifiers) == 0 || len(s.Families) == 0 || len(s.PatientCodes) == 0 || len(s.EncounterPatients) == 0 {
		b.Fatal("the database lacks the data the targets need")
	}
}

// RunSearchTargets runs issue 4's target searches through e (parse, store
// query, Bundle) as sub-benchmarks of b: each from 8 concurrent clients
// over the sampled values in turn, after one pass over every value (the
// steady state of a running server, pages in the caches, not the first
// touch of each page), reporting the p50 and p99 latency in milliseconds.
// Every one of the first 20 values must find something, or the figures
// would time empty searches.
func RunSearchTargets(b *testing.B, e *engine.Engine, s *TargetSamples) {
	ctx := context.Background()
	search := func(typ string, q func(i int) url.Values) func(int) (fhir.Object, error) {
		return func(i int) (fhir.Object, error) { return e.Search(ctx, typ, q(i)) }
	}
	for _, q := range []struct {
		name string
		n    int
		run  func(i int) (fhir.Object, error)
	}{
		{"patient-by-identifier", len(s.Identifiers), search("Patient", func(i int) url.Values {
			return url.Values{"identifier": {s.Identifiers[i%len(s.Identifiers)]}}
		})},
		{"patient-by-family-birthdate", len(s.Families), search("Patient", func(i int) url.Values {
			p := s.Families[i%len(s.Families)]
			return url.Values{"family": {p[0]}, "birthdate": {p[1]}}
		})},
		{"observation-by-patient-code-sort-date", len(s.PatientCodes), search("Observation", func(i int) url.Values {
			p := s.PatientCodes[i%len(s.PatientCodes)]
			return url.Values{"patient": {p[0]}, "code": {p[1]}, "_sort": {"-date"}}
		})},
		{"observation-by-code-date-range", len(s.CodeYears), search("Observation", func(i int) url.Values {
			p := s.CodeYears[i%len(s.CodeYears)]
			return url.Values{"code": {p[0]}, "date": {"ge" + p[1] + "-01-01", "lt" + p[2] + "-01-01"}}
		})},
		{"encounter-by-patient-revinclude-condition", len(s.EncounterPatients), search("Encounter", func(i int) url.Values {
			return url.Values{"patient": {s.EncounterPatients[i%len(s.EncounterPatients)]}, "_revinclude": {"Condition:encounter"}}
		})},
		{"everything-over-1000", len(s.BigPatients), func(i int) (fhir.Object, error) {
			return e.Everything(ctx, s.BigPatients[i%len(s.BigPatients)], url.Values{})
		}},
	} {
		b.Run(q.name, func(b *testing.B) {
			if q.n == 0 {
				b.Skip("no sampled value for this query in the data")
			}
			matches := 0
			for i := range 20 {
				bundle, err := q.run(i)
				if err != nil {
					b.Fatal(err)
				}
				entries, _ := bundle["entry"].([]any)
				if len(entries) == 0 {
					b.Fatalf("sample %d finds nothing", i)
				}
				matches += len(entries)
			}
			for i := range q.n {
				if _, err := q.run(i); err != nil {
					b.Fatal(err)
				}
			}
			clients := 8
			b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			var mu sync.Mutex
			var all []time.Duration
			var next int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					mu.Lock()
					i := int(next)
					next++
					mu.Unlock()
					t0 := time.Now()
					if _, err := q.run(i); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(all) == 0 {
				return
			}
			slices.Sort(all)
			pct := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(matches)/20, "entries/op")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
