package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
)

// BenchmarkSearchTargets measures the searches of issue 4's targets through
// the engine (parse, store query, Bundle) on a loaded database:
//
//	sharedcare generate --people 32000 --seed 4 --out /tmp/gen
//	sharedcare import --data /tmp/db ../shared/data/synthea-r4 /tmp/gen
//	SHAREDCARE_BENCH_DB=/tmp/db/sharedcare.db go test -run '^$' \
//	    -bench SearchTargets -benchtime 2000x ./internal/store/sqlite/
//
// Each sub-benchmark runs its query from 8 concurrent clients (goroutines),
// over values sampled from the data (different patients and codes, so the
// page cache is exercised as a real workload would), and reports the p50
// and p99 latency in milliseconds. It also reports index bytes per resource.
// Without SHAREDCARE_BENCH_DB it is skipped: the figures mean nothing on a
// small database.
func BenchmarkSearchTargets(b *testing.B) {
	path := os.Getenv("SHAREDCARE_BENCH_DB")
	if path == "" {
		b.Skip("set SHAREDCARE_BENCH_DB to a loaded sharedcare.db (see the comment)")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	samples := sampleTargets(b, path)
	e := engine.New(st, engine.Config{BaseURL: "http://127.0.0.1:8080/fhir"})

	b.Run("index-bytes", func(b *testing.B) {
		sizes, err := st.Sizes(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var idx, all int64
		for _, s := range sizes {
			all += s.Bytes
			if strings.HasPrefix(s.Name, "idx_") || strings.HasPrefix(s.Name, "resources_") || strings.HasPrefix(s.Name, "sqlite_autoindex_resources") {
				idx += s.Bytes
			}
		}
		b.ReportMetric(float64(samples.resources), "resources")
		b.ReportMetric(float64(idx)/float64(samples.resources), "index-bytes/resource")
		b.ReportMetric(float64(all)/float64(samples.resources), "file-bytes/resource")
		for _, s := range sizes {
			b.Logf("%-40s %12d", s.Name, s.Bytes)
		}
	})

	type query struct {
		name string
		run  func(i int) (fhir.Object, error)
	}
	search := func(typ string, q func(i int) url.Values) func(int) (fhir.Object, error) {
		return func(i int) (fhir.Object, error) {
			return e.Search(ctx, typ, q(i))
		}
	}
	for _, q := range []query{
		{"patient-by-identifier", search("Patient", func(i int) url.Values {
			p := samples.identifiers[i%len(samples.identifiers)]
			return url.Values{"identifier": {p}}
		})},
		{"patient-by-family-birthdate", search("Patient", func(i int) url.Values {
			p := samples.families[i%len(samples.families)]
			return url.Values{"family": {p[0]}, "birthdate": {p[1]}}
		})},
		{"observation-by-patient-code-sort-date", search("Observation", func(i int) url.Values {
			p := samples.patientCodes[i%len(samples.patientCodes)]
			return url.Values{"patient": {p[0]}, "code": {p[1]}, "_sort": {"-date"}}
		})},
		{"observation-by-code-date-range", search("Observation", func(i int) url.Values {
			p := samples.codeYears[i%len(samples.codeYears)]
			return url.Values{"code": {p[0]}, "date": {"ge" + p[1] + "-01-01", "lt" + p[2] + "-01-01"}}
		})},
		{"encounter-by-patient-revinclude-condition", search("Encounter", func(i int) url.Values {
			p := samples.encounterPatients[i%len(samples.encounterPatients)]
			return url.Values{"patient": {p}, "_revinclude": {"Condition:encounter"}}
		})},
		{"everything-over-1000", func(i int) (fhir.Object, error) {
			return e.Everything(ctx, samples.bigPatients[i%len(samples.bigPatients)], url.Values{})
		}},
	} {
		b.Run(q.name, func(b *testing.B) {
			if q.name == "everything-over-1000" && len(samples.bigPatients) == 0 {
				b.Skip("no patient with over 1,000 resources in the data")
			}
			// Every sampled value must find something, or the figures
			// would time empty searches.
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
			// One pass over every sampled value first, so the figures are
			// the steady state of a running server (pages in the OS cache),
			// not the first touch of each page after the load.
			for i := range samples.n(q.name) {
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

// n is the number of sampled values the named query cycles through.
func (s *targetSamples) n(name string) int {
	switch name {
	case "patient-by-identifier":
		return len(s.identifiers)
	case "patient-by-family-birthdate":
		return len(s.families)
	case "observation-by-patient-code-sort-date":
		return len(s.patientCodes)
	case "observation-by-code-date-range":
		return len(s.codeYears)
	case "encounter-by-patient-revinclude-condition":
		return len(s.encounterPatients)
	}
	return len(s.bigPatients)
}

// targetSamples are query values drawn from the loaded data.
type targetSamples struct {
	resources         int64
	identifiers       []string    // system|value of Patient identifiers
	families          [][2]string // family, birthdate (YYYY-MM-DD)
	patientCodes      [][2]string // Patient/id, system|code of one of their Observations
	codeYears         [][3]string // system|code, year, year+1
	encounterPatients []string    // Patient/id with encounters
	bigPatients       []string    // ids of patients with over 1,000 resources
}

// sampleTargets draws values from the index tables directly (read-only):
// every 97th patient by rid, so the sample spreads over the whole load.
func sampleTargets(b *testing.B, path string) *targetSamples {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := &targetSamples{}
	must := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	must(db.QueryRow("SELECT count(*) FROM resources WHERE deleted = 0").Scan(&s.resources))
	rows, err := db.Query("SELECT rid, id FROM resources WHERE type = 'Patient' AND deleted = 0 AND rid % 97 = 0 LIMIT 400")
	must(err)
	type pat struct {
		rid int64
		id  string
	}
	var pats []pat
	for rows.Next() {
		var p pat
		must(rows.Scan(&p.rid, &p.id))
		pats = append(pats, p)
	}
	must(rows.Err())
	rows.Close()
	for _, p := range pats {
		lo, hi := p.rid<<16, p.rid<<16|0xffff
		var sys, code string
		if db.QueryRow("SELECT system, code FROM idx_token WHERE key BETWEEN ? AND ? AND param = 'identifier' AND system <> '' LIMIT 1", lo, hi).Scan(&sys, &code) == nil {
			s.identifiers = append(s.identifiers, sys+"|"+code)
		}
		var fam string
		var birth int64
		if db.QueryRow("SELECT exact FROM idx_string WHERE key BETWEEN ? AND ? AND param = 'family' LIMIT 1", lo, hi).Scan(&fam) == nil &&
			db.QueryRow("SELECT lo FROM idx_date WHERE key BETWEEN ? AND ? AND param = 'birthdate' LIMIT 1", lo, hi).Scan(&birth) == nil {
			s.families = append(s.families, [2]string{fam, time.UnixMilli(birth).UTC().Format("2006-01-02")})
		}
		var orid int64
		if db.QueryRow("SELECT rid FROM idx_reference WHERE param = 'patient' AND ref_id = ? AND ref_type = 'Patient' AND type = 'Observation' LIMIT 1", p.id).Scan(&orid) == nil {
			var olo int64
			if db.QueryRow("SELECT system, code FROM idx_token WHERE key BETWEEN ? AND ? AND param = 'code' LIMIT 1", orid<<16, orid<<16|0xffff).Scan(&sys, &code) == nil &&
				db.QueryRow("SELECT lo FROM idx_date WHERE key BETWEEN ? AND ? AND param = 'date' LIMIT 1", orid<<16, orid<<16|0xffff).Scan(&olo) == nil {
				s.patientCodes = append(s.patientCodes, [2]string{"Patient/" + p.id, sys + "|" + code})
				y := time.UnixMilli(olo).UTC().Year()
				s.codeYears = append(s.codeYears, [3]string{sys + "|" + code, fmt.Sprint(y), fmt.Sprint(y + 1)})
			}
		}
		var one int
		if db.QueryRow("SELECT 1 FROM idx_reference WHERE param = 'patient' AND ref_id = ? AND ref_type = 'Patient' AND type = 'Encounter' LIMIT 1", p.id).Scan(&one) == nil {
			s.encounterPatients = append(s.encounterPatients, "Patient/"+p.id)
		}
	}
	rows, err = db.Query("SELECT comp_id FROM idx_compartment WHERE comp_type = 'Patient' GROUP BY comp_id HAVING count(*) > 1000 LIMIT 50")
	must(err)
	for rows.Next() {
		var id string
		must(rows.Scan(&id))
		s.bigPatients = append(s.bigPatients, id)
	}
	must(rows.Err())
	rows.Close()
	b.Logf("sampled %d identifiers, %d family+birthdate, %d patient+code, %d code+year, %d encounter patients, %d patients over 1,000 resources",
		len(s.identifiers), len(s.families), len(s.patientCodes), len(s.codeYears), len(s.encounterPatients), len(s.bigPatients))
	if len(s.identifiers) == 0 || len(s.families) == 0 || len(s.patientCodes) == 0 || len(s.encounterPatients) == 0 {
		b.Fatal("the database lacks the data the targets need")
	}
	return s
}
