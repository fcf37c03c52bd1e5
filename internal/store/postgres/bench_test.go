package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// benchIndex is roughly what the engine extracts from a Synthea Observation:
// a dozen tokens, a few references, dates, strings and a quantity.
func benchIndex(i int) store.Index {
	var ix store.Index
	for j := range 12 {
		ix.Tokens = append(ix.Tokens, store.Token{Param: fmt.Sprint("p", j), System: "http://loinc.org", Code: fmt.Sprint(i*13 + j), Text: "Body weight"})
	}
	for j := range 3 {
		ix.References = append(ix.References, store.Reference{Param: fmt.Sprint("r", j), Type: "Patient", ID: fmt.Sprint("pat", i%500)})
	}
	for j := range 3 {
		ix.Dates = append(ix.Dates, store.Date{Param: fmt.Sprint("d", j), Lo: int64(i) * 1000, Hi: int64(i)*1000 + 999})
	}
	ix.Strings = append(ix.Strings, store.String{Param: "name", Norm: "smith", Exact: "Smith"})
	ix.Quantities = append(ix.Quantities, store.Quantity{Param: "value-quantity", System: "http://unitsofmeasure.org", Code: "kg", Lo: 70.45, Hi: 70.55})
	ix.URIs = append(ix.URIs, store.URI{Param: "_profile", Value: "http://hl7.org/fhir/StructureDefinition/bodyweight"})
	return ix
}

// BenchmarkPut measures ingest into the store alone: 4 writers, each writing
// transactions of 100 new resources (about 1.5 kB of JSON and 21 index rows
// each), as the HTTP ingest of Synthea bundles with 4 concurrent
// transactions does. It reports resources/s.
func BenchmarkPut(b *testing.B) { benchPut(b, benchIndex) }

// BenchmarkPutWithoutIndex is BenchmarkPut with no index rows: the cost of
// the versions alone, for comparison.
func BenchmarkPutWithoutIndex(b *testing.B) {
	benchPut(b, func(int) store.Index { return store.Index{} })
}

func benchPut(b *testing.B, index func(int) store.Index) {
	st := backend.OpenPostgresForTest(b)
	ctx := context.Background()
	const writers, perTx = 4, 100
	pad := strings.Repeat("x", 1400)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Value
	txs := b.N
	var issued atomic.Int64
	for range writers {
		wg.Go(func() {
			for issued.Add(1) <= int64(txs) {
				err := st.Write(ctx, func(tx store.Tx) error {
					for range perTx {
						i := int(next.Add(1))
						id := fmt.Sprint("obs", i)
						p := &store.Put{Type: "Observation", ID: id, VersionID: 1, LastUpdated: time.Now(),
							Body:  fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"pad":%q}`, id, pad),
							Index: index(i)}
						if err := tx.Put(ctx, p); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*perTx)/time.Since(start).Seconds(), "resources/s")
}
