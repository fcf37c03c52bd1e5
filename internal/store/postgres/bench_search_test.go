package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
)

// BenchmarkSearchTargets measures the searches of issue 4's targets through
// the engine (parse, store query, Bundle) on a loaded PostgreSQL database,
// with the same queries and sampling as the SQLite store's benchmark:
//
//	sharedcare generate --people 32000 --seed 4 --out /tmp/gen
//	sharedcare import --data /tmp/d --db "$URL" ../shared/data/synthea-r4 /tmp/gen
//	SHAREDCARE_BENCH_PG="$URL" go test -run '^$' \
//	    -bench SearchTargets -benchtime 2000x ./internal/store/postgres/
//
// Each sub-benchmark runs its query from 8 concurrent clients and reports
// the p50 and p99 latency in milliseconds; index-bytes reports the bytes of
// the index tables and every index per resource. Without
// SHAREDCARE_BENCH_PG it is skipped: the figures mean nothing on a small
// database.
func BenchmarkSearchTargets(b *testing.B) {
	dbURL := os.Getenv("SHAREDCARE_BENCH_PG")
	if dbURL == "" {
		b.Skip("set SHAREDCARE_BENCH_PG to the URL of a loaded database (see the comment)")
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// The sampler's own connection takes the URL without the pool's
	// settings (pool_max_conns and the like), which only pgxpool knows.
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	db, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(ctx)
	samples := sampleTargets(b, db)
	e := engine.New(st, engine.Config{BaseURL: "http://127.0.0.1:8080/fhir"})

	b.Run("index-bytes", func(b *testing.B) {
		// Index rows (idx_* tables and their indexes) plus every index of
		// resources and resource_versions; bodies (resource_versions' heap
		// and TOAST) apart.
		var idx, all int64
		if err := db.QueryRow(ctx, `SELECT
				coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname LIKE 'idx\_%'), 0)
				+ coalesce(sum(pg_indexes_size(c.oid)) FILTER (WHERE c.relname IN ('resources', 'resource_versions')), 0),
				coalesce(sum(pg_total_relation_size(c.oid)), 0)
			FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace`).Scan(&idx, &all); err != nil {
			b.Fatal(err)
		}
		// The share of the index tables' pages the visibility map marks
		// all-visible: an index-only scan reads the table for every row on
		// a page that is not. VACUUM (and autovacuum after writes) sets
		// it; VACUUM FULL leaves it empty, which made a walk of a common
		// code's rows read 33,000 heap tuples it did not need.
		var visible float64
		if err := db.QueryRow(ctx, `SELECT coalesce(sum(relallvisible)::float8 / nullif(sum(relpages), 0), 1)
			FROM pg_class WHERE relkind = 'r' AND relname LIKE 'idx\_%' AND relnamespace = current_schema()::regnamespace`).Scan(&visible); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(visible, "all-visible")
		b.ReportMetric(float64(samples.resources), "resources")
		b.ReportMetric(float64(idx)/float64(samples.resources), "index-bytes/resource")
		b.ReportMetric(float64(all)/float64(samples.resources), "db-bytes/resource")
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
			// One pass over every sampled value first, as the SQLite
			// store's benchmark does, so the figures are the steady state
			// of a running server (pages in the caches), not the first
			// touch of each page: this machine's page cache holds less
			// than the database, and a cold run measured every p99 at
			// 24-65 ms.
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

// sampleTargets draws values from the index tables directly: every 7th
// patient by rid that has Observations, the first 400 in rid order, so
// that every run times the same values (unordered, a sequential scan may
// start anywhere in the table, and runs drew different patients).
func sampleTargets(b *testing.B, db *pgx.Conn) *targetSamples {
	ctx := context.Background()
	s := &targetSamples{}
	must := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	must(db.QueryRow(ctx, "SELECT count(*) FROM resources WHERE NOT deleted").Scan(&s.resources))
	// Patients with a clinical record (an Observation): in a region most
	// Patient resources are a pharmacy's or a hospital's stub of a person.
	rows, err := db.Query(ctx, `SELECT r.rid, r.id FROM resources r WHERE r.type = 'Patient' AND NOT r.deleted AND r.rid % 7 = 0
		AND EXISTS (SELECT 1 FROM idx_reference x WHERE x.param = 'patient' AND left(x.ref_id, 256) = left(r.id, 256)
			AND x.ref_id = r.id AND left(x.ref_type, 256) = 'Patient' AND x.type = 'Observation') ORDER BY r.rid LIMIT 400`)
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
		var sys, code string
		if db.QueryRow(ctx, "SELECT system, code FROM idx_token WHERE rid = $1 AND param = 'identifier' AND system <> '' LIMIT 1", p.rid).Scan(&sys, &code) == nil {
			s.identifiers = append(s.identifiers, sys+"|"+code)
		}
		var fam string
		var birth int64
		if db.QueryRow(ctx, "SELECT exact FROM idx_string WHERE rid = $1 AND param = 'family' LIMIT 1", p.rid).Scan(&fam) == nil &&
			db.QueryRow(ctx, "SELECT lo FROM idx_date WHERE rid = $1 AND param = 'birthdate' LIMIT 1", p.rid).Scan(&birth) == nil {
			s.families = append(s.families, [2]string{fam, time.UnixMilli(birth).UTC().Format("2006-01-02")})
		}
		var orid int64
		if db.QueryRow(ctx, "SELECT rid FROM idx_reference WHERE param = 'patient' AND left(ref_id, 256) = left($1, 256) AND ref_id = $1 AND left(ref_type, 256) = 'Patient' AND type = 'Observation' LIMIT 1", p.id).Scan(&orid) == nil {
			var olo int64
			if db.QueryRow(ctx, "SELECT system, code FROM idx_token WHERE rid = $1 AND param = 'code' LIMIT 1", orid).Scan(&sys, &code) == nil &&
				db.QueryRow(ctx, "SELECT lo FROM idx_date WHERE rid = $1 AND param = 'date' LIMIT 1", orid).Scan(&olo) == nil {
				s.patientCodes = append(s.patientCodes, [2]string{"Patient/" + p.id, sys + "|" + code})
				y := time.UnixMilli(olo).UTC().Year()
				s.codeYears = append(s.codeYears, [3]string{sys + "|" + code, fmt.Sprint(y), fmt.Sprint(y + 1)})
			}
		}
		var one int
		if db.QueryRow(ctx, "SELECT 1 FROM idx_reference WHERE param = 'patient' AND left(ref_id, 256) = left($1, 256) AND ref_id = $1 AND left(ref_type, 256) = 'Patient' AND type = 'Encounter' LIMIT 1", p.id).Scan(&one) == nil {
			s.encounterPatients = append(s.encounterPatients, "Patient/"+p.id)
		}
	}
	rows, err = db.Query(ctx, "SELECT comp_id FROM idx_compartment WHERE comp_type = 'Patient' GROUP BY comp_id HAVING count(*) > 1000 LIMIT 50")
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
