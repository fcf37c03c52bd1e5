package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
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
		b.ReportMetric(float64(samples.Resources), "resources")
		b.ReportMetric(float64(idx)/float64(samples.Resources), "index-bytes/resource")
		b.ReportMetric(float64(all)/float64(samples.Resources), "db-bytes/resource")
	})

	storetest.RunSearchTargets(b, e, samples)
}

// sampleTargets draws values from the index tables directly: every 7th
// patient by rid that has Observations, the first 400 in rid order, so
// that every run times the same values (unordered, a sequential scan may
// start anywhere in the table, and runs drew different patients).
func sampleTargets(b *testing.B, db *pgx.Conn) *storetest.TargetSamples {
	ctx := context.Background()
	s := &storetest.TargetSamples{}
	must := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	must(db.QueryRow(ctx, "SELECT count(*) FROM resources WHERE NOT deleted").Scan(&s.Resources))
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
			s.Identifiers = append(s.Identifiers, sys+"|"+code)
		}
		var fam string
		var birth int64
		if db.QueryRow(ctx, "SELECT exact FROM idx_string WHERE rid = $1 AND param = 'family' LIMIT 1", p.rid).Scan(&fam) == nil &&
			db.QueryRow(ctx, "SELECT lo FROM idx_date WHERE rid = $1 AND param = 'birthdate' LIMIT 1", p.rid).Scan(&birth) == nil {
			s.Families = append(s.Families, [2]string{fam, time.UnixMilli(birth).UTC().Format("2006-01-02")})
		}
		var orid int64
		if db.QueryRow(ctx, "SELECT rid FROM idx_reference WHERE param = 'patient' AND left(ref_id, 256) = left($1, 256) AND ref_id = $1 AND left(ref_type, 256) = 'Patient' AND type = 'Observation' LIMIT 1", p.id).Scan(&orid) == nil {
			var olo int64
			if db.QueryRow(ctx, "SELECT system, code FROM idx_token WHERE rid = $1 AND param = 'code' LIMIT 1", orid).Scan(&sys, &code) == nil &&
				db.QueryRow(ctx, "SELECT lo FROM idx_date WHERE rid = $1 AND param = 'date' LIMIT 1", orid).Scan(&olo) == nil {
				s.PatientCodes = append(s.PatientCodes, [2]string{"Patient/" + p.id, sys + "|" + code})
				y := time.UnixMilli(olo).UTC().Year()
				s.CodeYears = append(s.CodeYears, [3]string{sys + "|" + code, fmt.Sprint(y), fmt.Sprint(y + 1)})
			}
		}
		var one int
		if db.QueryRow(ctx, "SELECT 1 FROM idx_reference WHERE param = 'patient' AND left(ref_id, 256) = left($1, 256) AND ref_id = $1 AND left(ref_type, 256) = 'Patient' AND type = 'Encounter' LIMIT 1", p.id).Scan(&one) == nil {
			s.EncounterPatients = append(s.EncounterPatients, "Patient/"+p.id)
		}
	}
	rows, err = db.Query(ctx, "SELECT comp_id FROM idx_compartment WHERE comp_type = 'Patient' GROUP BY comp_id HAVING count(*) > 1000 LIMIT 50")
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
