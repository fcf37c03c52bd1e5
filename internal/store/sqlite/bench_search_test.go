package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store/sqlite"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
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
		b.ReportMetric(float64(samples.Resources), "resources")
		b.ReportMetric(float64(idx)/float64(samples.Resources), "index-bytes/resource")
		b.ReportMetric(float64(all)/float64(samples.Resources), "file-bytes/resource")
		for _, s := range sizes {
			b.Logf("%-40s %12d", s.Name, s.Bytes)
		}
	})

	storetest.RunSearchTargets(b, e, samples)
}

// sampleTargets draws values from the index tables directly (read-only):
// every 97th patient by rid, so the sample spreads over the whole load.
func sampleTargets(b *testing.B, path string) *storetest.TargetSamples {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := &storetest.TargetSamples{}
	must := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	must(db.QueryRow("SELECT count(*) FROM resources WHERE deleted = 0").Scan(&s.Resources))
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
			s.Identifiers = append(s.Identifiers, sys+"|"+code)
		}
		var fam string
		var birth int64
		if db.QueryRow("SELECT exact FROM idx_string WHERE key BETWEEN ? AND ? AND param = 'family' LIMIT 1", lo, hi).Scan(&fam) == nil &&
			db.QueryRow("SELECT lo FROM idx_date WHERE key BETWEEN ? AND ? AND param = 'birthdate' LIMIT 1", lo, hi).Scan(&birth) == nil {
			s.Families = append(s.Families, [2]string{fam, time.UnixMilli(birth).UTC().Format("2006-01-02")})
		}
		var orid int64
		if db.QueryRow("SELECT rid FROM idx_reference WHERE param = 'patient' AND ref_id = ? AND ref_type = 'Patient' AND type = 'Observation' LIMIT 1", p.id).Scan(&orid) == nil {
			var olo int64
			if db.QueryRow("SELECT system, code FROM idx_token WHERE key BETWEEN ? AND ? AND param = 'code' LIMIT 1", orid<<16, orid<<16|0xffff).Scan(&sys, &code) == nil &&
				db.QueryRow("SELECT lo FROM idx_date WHERE key BETWEEN ? AND ? AND param = 'date' LIMIT 1", orid<<16, orid<<16|0xffff).Scan(&olo) == nil {
				s.PatientCodes = append(s.PatientCodes, [2]string{"Patient/" + p.id, sys + "|" + code})
				y := time.UnixMilli(olo).UTC().Year()
				s.CodeYears = append(s.CodeYears, [3]string{sys + "|" + code, fmt.Sprint(y), fmt.Sprint(y + 1)})
			}
		}
		var one int
		if db.QueryRow("SELECT 1 FROM idx_reference WHERE param = 'patient' AND ref_id = ? AND ref_type = 'Patient' AND type = 'Encounter' LIMIT 1", p.id).Scan(&one) == nil {
			s.EncounterPatients = append(s.EncounterPatients, "Patient/"+p.id)
		}
	}
	rows, err = db.Query("SELECT comp_id FROM idx_compartment WHERE comp_type = 'Patient' GROUP BY comp_id HAVING count(*) > 1000 LIMIT 50")
	must(err)
	for rows.Next() {
		var id string
		must(rows.Scan(&id))
		s.BigPatients = append(s.BigPatients, id)
	}
	must(rows.Err())
	rows.Close()
	s.Check(b)
	return s
}
