package mpi

import (
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/synth"
)

var (
	benchOnce sync.Once
	benchA    []Record // 10,000 GP practice Patients
	benchB    []Record // 10,000 Patients of the other organisations
	benchT    = map[string]string{}
)

// tenThousandEach generates a region of 10,000 people and takes the GP
// practices' Patients as one side and the first 10,000 of every other
// organisation's as the other: an organisation joining the shared record
// linked against the GP records, the case issue 5 measures.
func tenThousandEach(b *testing.B) ([]Record, []Record) {
	benchOnce.Do(func() {
		g := synth.New(synth.Options{People: 10_000, Seed: 42})
		orgs := g.Region().Orgs
		for i := 0; i < 10_000; i++ {
			_, rs, truth, _ := g.Person(i)
			for _, t := range truth {
				benchT[t.ODS+"/"+t.Patient] = t.Person
			}
			for _, r := range rs {
				if r.Type != "Patient" {
					continue
				}
				p, err := fhir.ParseObject(r.JSON, 64)
				if err != nil {
					b.Fatal(err)
				}
				rec := FromPatient(orgs[r.Org].ODS+"/"+r.ID, p)
				if orgs[r.Org].Kind == synth.GPPractice {
					benchA = append(benchA, rec)
				} else if len(benchB) < 10_000 {
					benchB = append(benchB, rec)
				}
			}
		}
	})
	if len(benchA) != 10_000 || len(benchB) != 10_000 {
		b.Fatalf("generated %d and %d records, want 10,000 each", len(benchA), len(benchB))
	}
	return benchA, benchB
}

// BenchmarkLink10kx10k is issue 5's speed target: 10,000 records against
// 10,000, from the records to persons, EM training included (under 10 s on
// 2 cores).
func BenchmarkLink10kx10k(b *testing.B) {
	a, c := tenThousandEach(b)
	b.ResetTimer()
	var l Linkage
	for i := 0; i < b.N; i++ {
		recs := make([]Record, 0, len(a)+len(c))
		recs = append(append(recs, a...), c...)
		l = Link(Train(recs), recs)
		if len(l.Person) != len(recs) {
			b.Fatalf("%d persons for %d records", len(l.Person), len(recs))
		}
	}
	b.StopTimer()
	q := Evaluate(l.Person, benchT)
	b.ReportMetric(q.Precision, "precision")
	b.ReportMetric(q.Recall, "recall")
}

// BenchmarkIndexMatch is the incremental path: one new Patient matched
// against an index of 10,000 (what a create costs the server).
func BenchmarkIndexMatch(b *testing.B) {
	a, c := tenThousandEach(b)
	ix := NewIndex(Train(append(append([]Record(nil), a...), c...)))
	for _, r := range a {
		ix.Add(r)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ix.Candidates(c[i%len(c)], 10)
	}
}
