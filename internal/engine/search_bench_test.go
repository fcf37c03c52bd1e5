package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkSearchTargets runs issue 4's target searches at engine level
// (no HTTP) over the Synthea set on every backend, 8 concurrent clients,
// and reports p50 and p99 latency per search shape. The targets
// (p99 < 20 ms; $everything p50 < 100 ms) are for 1,000,000 resources;
// this set is about 45,000, so it shows the plans, not the final figures.
func BenchmarkSearchTargets(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(sharedData(b, "synthea-r4"), "*.json.gz"))
	if len(files) == 0 {
		b.Skip("no Synthea bundles")
	}
	for _, nb := range backend.ForTests(b) {
		b.Run(nb.Name, func(b *testing.B) {
			ctx := context.Background()
			e := New(nb.Open(b), Config{BaseURL: testBase, Lenient: true})
			for _, f := range files {
				if _, err := e.Bundle(ctx, readData(b, f), WriteOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			shapes := searchShapes(b, e)
			for _, name := range []string{"patient-by-identifier", "patient-by-family-birthdate", "observation-by-patient-code-sort-date",
				"observation-by-code-date-range", "encounter-by-patient-revinclude-condition", "everything"} {
				qs := shapes[name]
				b.Run(name, func(b *testing.B) {
					var next atomic.Int64
					lat := make([]time.Duration, b.N)
					var wg sync.WaitGroup
					b.ResetTimer()
					for range 8 {
						wg.Go(func() {
							for {
								i := int(next.Add(1)) - 1
								if i >= b.N {
									return
								}
								q := qs[i%len(qs)]
								t0 := time.Now()
								var err error
								if name == "everything" {
									_, err = e.Everything(ctx, q.Get("_id"), url.Values{"_count": {"1000"}})
								} else {
									typ := q.Get("_type")
									params := url.Values{}
									for k, v := range q {
										if k != "_type" {
											params[k] = v
										}
									}
									_, err = e.Search(ctx, typ, params)
								}
								lat[i] = time.Since(t0)
								if err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				})
			}
		})
	}
}

// searchShapes builds the queries of each target shape from the loaded
// data. "_type" carries the resource type to search (not sent as a
// parameter: Search takes it apart).
func searchShapes(b *testing.B, e *Engine) map[string][]url.Values {
	bundle, err := e.Search(context.Background(), "Patient", url.Values{"_count": {"200"}})
	if err != nil {
		b.Fatal(err)
	}
	out := map[string][]url.Values{}
	add := func(name string, kv ...string) {
		q := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			q.Add(kv[i], kv[i+1])
		}
		out[name] = append(out[name], q)
	}
	for _, en := range bundle["entry"].([]any) {
		var p fhir.Object
		json.Unmarshal(en.(fhir.Object)["resource"].(json.RawMessage), &p)
		id := p["id"].(string)
		if ids, _ := p["identifier"].([]any); len(ids) > 1 {
			ident := ids[1].(map[string]any)
			add("patient-by-identifier", "identifier", fmt.Sprint(ident["system"], "|", ident["value"]))
		}
		if names, _ := p["name"].([]any); len(names) > 0 {
			add("patient-by-family-birthdate", "family", fmt.Sprint(names[0].(map[string]any)["family"]), "birthdate", fmt.Sprint(p["birthDate"]))
		}
		add("observation-by-patient-code-sort-date", "patient", "Patient/"+id, "code", "http://loinc.org|8302-2", "_sort", "-date")
		add("encounter-by-patient-revinclude-condition", "patient", "Patient/"+id, "_revinclude", "Condition:encounter")
		add("everything", "_id", id)
	}
	for _, c := range []string{"8302-2", "29463-7", "72514-3", "8867-4", "39156-5"} {
		for y := 2010; y < 2020; y++ {
			add("observation-by-code-date-range", "code", "http://loinc.org|"+c, "date", fmt.Sprintf("ge%d-01-01", y), "date", fmt.Sprintf("lt%d-03-01", y))
		}
	}
	types := map[string]string{"patient-by-identifier": "Patient", "patient-by-family-birthdate": "Patient", "observation-by-patient-code-sort-date": "Observation",
		"observation-by-code-date-range": "Observation", "encounter-by-patient-revinclude-condition": "Encounter"}
	for name, typ := range types {
		for _, q := range out[name] {
			q.Set("_type", typ)
		}
	}
	return out
}
