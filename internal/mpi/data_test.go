package mpi

import (
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/synth"
)

// febrlSystem is the identifier system the FEBRL soc_sec_id becomes: a local
// number both sides of a pair may carry, never an NHS number.
const febrlSystem = "urn:sharedcare:test:febrl:soc_sec_id"

// moduleRoot finds the directory holding go.mod above this package.
func moduleRoot(tb testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the package")
		}
		dir = parent
	}
}

// febrl reads ../shared/data/febrl/dataset<n>.csv as Patients, returning the
// records and the truth (rec-N-org and rec-N-dup-K are person N). The test
// skips when the data is absent.
func febrl(tb testing.TB, n string) ([]Record, map[string]string) {
	path := filepath.Join(moduleRoot(tb), "..", "shared", "data", "febrl", "dataset"+n+".csv")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("FEBRL data set %s absent (%s): the quality figures need it", n, path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.TrimLeadingSpace = true
	cr.LazyQuotes = true
	if _, err := cr.Read(); err != nil {
		tb.Fatal(err)
	}
	var recs []Record
	truth := map[string]string{}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		id := strings.TrimSpace(row[0])
		parts := strings.Split(id, "-")
		truth[id] = parts[1]
		recs = append(recs, FromPatient(id, febrlPatient(row)))
	}
	return recs, truth
}

// febrlPatient converts a FEBRL row to a Patient the way an importer would:
// street number and street as the first address line, the locality as the
// second, suburb as city, the date only when it is a real date (a FHIR
// server refuses 1908-13-09), soc_sec_id as a local identifier.
func febrlPatient(row []string) fhir.Object {
	col := func(i int) string { return strings.TrimSpace(row[i]) }
	p := fhir.Object{"resourceType": "Patient"}
	name := fhir.Object{"use": "official"}
	if v := col(2); v != "" {
		name["family"] = v
	}
	if v := col(1); v != "" {
		name["given"] = []any{v}
	}
	p["name"] = []any{name}
	addr := fhir.Object{}
	var lines []any
	if l := strings.TrimSpace(col(3) + " " + col(4)); l != "" {
		lines = append(lines, l)
	}
	if v := col(5); v != "" {
		lines = append(lines, v)
	}
	if len(lines) > 0 {
		addr["line"] = lines
	}
	if v := col(6); v != "" {
		addr["city"] = v
	}
	if v := col(7); v != "" {
		addr["postalCode"] = v
	}
	if v := col(8); v != "" {
		addr["state"] = v
	}
	p["address"] = []any{addr}
	if d := col(9); len(d) == 8 {
		if t, err := time.Parse("20060102", d); err == nil {
			p["birthDate"] = t.Format("2006-01-02")
		}
	}
	if v := col(10); v != "" {
		p["identifier"] = []any{fhir.Object{"system": febrlSystem, "value": v}}
	}
	return p
}

// region generates a synthetic region of people in memory and returns every
// organisation's Patient as a Record (Ref "<ODS>/<id>") with the truth.
func region(tb testing.TB, people int, seed uint64) ([]Record, map[string]string) {
	g := synth.New(synth.Options{People: people, Seed: seed})
	orgs := g.Region().Orgs
	var recs []Record
	truth := map[string]string{}
	for i := 0; i < people; i++ {
		_, rs, rows, _ := g.Person(i)
		for _, r := range rs {
			if r.Type != "Patient" {
				continue
			}
			p, err := fhir.ParseObject(r.JSON, 64)
			if err != nil {
				tb.Fatal(err)
			}
			recs = append(recs, FromPatient(orgs[r.Org].ODS+"/"+r.ID, p))
		}
		for _, t := range rows {
			truth[t.ODS+"/"+t.Patient] = t.Person
		}
	}
	return recs, truth
}
