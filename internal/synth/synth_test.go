package synth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/nhsnumber"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// generate writes a region into a fresh directory and returns it.
func generate(t testing.TB, people int, seed uint64, f Format) (string, *Summary) {
	t.Helper()
	dir := t.TempDir()
	sum, err := Generate(context.Background(), dir, Options{People: people, Seed: seed, Format: f})
	if err != nil {
		t.Fatal(err)
	}
	return dir, sum
}

var datePattern = regexp.MustCompile(`\b20[0-9]{2}-[0-9]{2}-[0-9]{2}\b`)

// shared is one 3,000-person NDJSON region (seed 8) that the read-only
// tests share, generated once per test binary.
var shared struct {
	once sync.Once
	dir  string
	sum  *Summary
	err  error
}

func sharedRegion(t testing.TB) (string, *Summary) {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "synth-test-")
		if shared.err == nil {
			shared.sum, shared.err = Generate(context.Background(), shared.dir, Options{People: 3000, Seed: 8})
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.dir, shared.sum
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// eachResource calls fn for every resource in an NDJSON region.
func eachResource(t testing.TB, dir string, fn func(ods string, r fhir.Object, line []byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".ndjson") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		ods := filepath.Base(filepath.Dir(path))
		for sc.Scan() {
			r, err := fhir.ParseObject(sc.Bytes(), 100)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			fn(ods, r, sc.Bytes())
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestEveryResourcePassesStrictValidation(t *testing.T) {
	for _, f := range []Format{NDJSON, Bundle} {
		t.Run(string(f), func(t *testing.T) {
			dir, sum := generate(t, 300, 7, f)
			n := 0
			check := func(where string, r fhir.Object) {
				n++
				if _, err := validate.Resource(r, validate.Options{}); err != nil {
					t.Errorf("%s %s/%s: %v", where, fhir.ResourceType(r), fhir.ID(r), fhir.Outcome(err))
				}
			}
			if f == NDJSON {
				eachResource(t, dir, func(ods string, r fhir.Object, line []byte) {
					check(ods, r)
					// Nothing happens after the day the region is "as at".
					for _, d := range datePattern.FindAll(line, -1) {
						if string(d) > date(Ref) {
							t.Errorf("%s %s/%s: date %s is after %s", ods, fhir.ResourceType(r), fhir.ID(r), d, date(Ref))
						}
					}
				})
			} else {
				files, _ := filepath.Glob(filepath.Join(dir, "*", "bundle-*.json"))
				for _, file := range files {
					data, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					b, err := fhir.ParseObject(data, 100)
					if err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					check(file, b) // the Bundle itself, entries validated as nested resources
					n += len(b["entry"].([]any)) - 1
				}
			}
			if n != sum.Resources {
				t.Errorf("validated %d resources, the summary says %d were written", n, sum.Resources)
			}
		})
	}
}

func TestNHSNumbersValidInTestRangeAndWrongOnlyWhereRecorded(t *testing.T) {
	dir, sum := generate(t, 2000, 11, NDJSON)
	truth := map[string]string{} // ods/patient -> person
	for _, row := range readCSV(t, filepath.Join(dir, "truth.csv"))[1:] {
		truth[row[0]+"/"+row[1]] = row[2]
	}
	wrong := map[string][]string{}
	for _, row := range readCSV(t, filepath.Join(dir, "wrong-nhs-numbers.csv"))[1:] {
		wrong[row[0]+"/"+row[1]] = row
	}
	if len(wrong) == 0 || len(wrong) != sum.WrongNHS {
		t.Fatalf("wrong NHS numbers recorded: %d, summary %d; want some, equal", len(wrong), sum.WrongNHS)
	}
	// The person's true number is the one their GP practice holds.
	trueNHS := map[string]string{}
	pats := map[string]fhir.Object{}
	eachResource(t, dir, func(ods string, r fhir.Object, _ []byte) {
		if fhir.ResourceType(r) != "Patient" {
			return
		}
		key := ods + "/" + fhir.ID(r)
		pats[key] = r
		if strings.HasPrefix(ods, "Z9") && len(ods) == 6 {
			trueNHS[truth[key]] = nhsOf(r)
		}
	})
	if len(pats) != len(truth) {
		t.Fatalf("%d Patients, %d truth rows; want one row per Patient", len(pats), len(truth))
	}
	for key, r := range pats {
		n := nhsOf(r)
		if n == "" {
			continue
		}
		if !nhsnumber.Valid(n) || !nhsnumber.InTestRange(n) {
			t.Errorf("%s: NHS number %q is not a valid test-range number", key, n)
		}
		person := truth[key]
		if w, ok := wrong[key]; ok {
			if n != w[3] || n == trueNHS[person] || w[4] != trueNHS[person] {
				t.Errorf("%s: recorded wrong number %v, Patient has %s, person's number %s", key, w, n, trueNHS[person])
			}
		} else if n != trueNHS[person] {
			t.Errorf("%s: NHS number %s differs from the person's %s but is not in wrong-nhs-numbers.csv", key, n, trueNHS[person])
		}
	}
	seen := map[string]string{}
	for person, n := range trueNHS {
		if other, dup := seen[n]; dup {
			t.Errorf("people %s and %s share NHS number %s", person, other, n)
		}
		seen[n] = person
	}
}

func nhsOf(r fhir.Object) string {
	ids, _ := r["identifier"].([]any)
	for _, id := range ids {
		o := id.(fhir.Object)
		if o["system"] == nhsnumber.System {
			return o["value"].(string)
		}
	}
	return ""
}

func TestOverlapAndOrganisationTypes(t *testing.T) {
	dir, sum := sharedRegion(t)
	two, four := 0, 0
	for k, n := range sum.KnownTo {
		if k >= 2 {
			two += n
		}
		if k >= 4 {
			four += n
		}
	}
	if got := float64(two) / 3000; got < 0.60 {
		t.Errorf("known to two or more organisations: %.1f%%, want at least 60%%", got*100)
	}
	if got := float64(four) / 3000; got < 0.05 {
		t.Errorf("known to four or more organisations: %.1f%%, want at least 5%%", got*100)
	}
	rows := readCSV(t, filepath.Join(dir, "organisations.csv"))[1:]
	withPatients := map[string]bool{}
	for _, row := range readCSV(t, filepath.Join(dir, "truth.csv"))[1:] {
		withPatients[row[0]] = true
	}
	kinds := map[string]bool{}
	for _, row := range rows {
		if withPatients[row[0]] {
			kinds[row[1]] = true
		}
	}
	for _, k := range Kinds {
		if !kinds[string(k)] {
			t.Errorf("no %s holds any Patient", k)
		}
	}
}

func TestLongTermConditionPrevalenceWithinCitedRange(t *testing.T) {
	const people = 8000
	g := New(Options{People: people, Seed: 42})
	var alive [5]int
	var with [5][]int
	for i := range with {
		with[i] = make([]int, len(LongTermConditions))
	}
	for i := 0; i < people; i++ {
		rng := newRand(g.seed, uint64(i))
		p := newPerson(rng, g.region, g.seed, i)
		if !p.Alive() {
			continue
		}
		b := BandOf(p.Age)
		alive[b]++
		for k, c := range LongTermConditions {
			if p.Has(c.Name) {
				with[b][k]++
			}
		}
	}
	for k, c := range LongTermConditions {
		for b, band := range Bands {
			got := 100 * float64(with[b][k]) / float64(alive[b])
			r := c.Rates[b]
			if got < r.Lo || got > r.Hi {
				t.Errorf("%s, ages %d-%d: %.2f%% of %d people, want %.2f%%-%.2f%%", c.Name, band.Lo, band.Hi, got, alive[b], r.Lo, r.Hi)
			}
		}
	}
}

// treeHash hashes every file's path and bytes under dir.
func treeHash(t testing.TB, dir string) [32]byte {
	t.Helper()
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00"))
		h.Write(data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func TestSameSeedSameBytesDifferentSeedDifferentBytes(t *testing.T) {
	for _, f := range []Format{NDJSON, Bundle} {
		t.Run(string(f), func(t *testing.T) {
			a, _ := generate(t, 500, 99, f) // GOMAXPROCS workers
			b, _ := generate(t, 500, 99, f)
			c, _ := generate(t, 500, 100, f)
			ha, hb, hc := treeHash(t, a), treeHash(t, b), treeHash(t, c)
			if ha != hb {
				t.Errorf("same seed: trees differ (%x, %x)", ha[:8], hb[:8])
			}
			one := t.TempDir()
			if _, err := Generate(context.Background(), one, Options{People: 500, Seed: 99, Format: f, Workers: 1}); err != nil {
				t.Fatal(err)
			}
			if h1 := treeHash(t, one); h1 != ha {
				t.Errorf("same seed, one worker instead of several: trees differ (%x, %x)", h1[:8], ha[:8])
			}
			if ha == hc {
				t.Errorf("different seeds: identical trees %x", ha[:8])
			}
		})
	}
}

func TestReferencesStayInsideTheFolder(t *testing.T) {
	dir, _ := generate(t, 300, 5, NDJSON)
	ids := map[string]bool{}
	var refs [][2]string
	eachResource(t, dir, func(ods string, r fhir.Object, line []byte) {
		ids[ods+"/"+fhir.ResourceType(r)+"/"+fhir.ID(r)] = true
		for _, m := range bytes.Split(line, []byte(`"reference":"`))[1:] {
			refs = append(refs, [2]string{ods, string(m[:bytes.IndexByte(m, '"')])})
		}
	})
	for _, r := range refs {
		if !ids[r[0]+"/"+r[1]] {
			t.Errorf("%s: reference %s does not resolve inside the folder", r[0], r[1])
		}
	}
}

func TestNHSTableAgreesWithNHSNumberPackage(t *testing.T) {
	want := 0
	for p := 0; p < 1000000; p++ {
		s := strconv.Itoa(999000000 + p)
		if d, ok := nhsnumber.CheckDigit(s); ok && nhsnumber.Valid(s+strconv.Itoa(d)) {
			want++
		}
	}
	if got := MaxPeople(); got != want {
		t.Fatalf("table has %d numbers, nhsnumber accepts %d", got, want)
	}
	for k := 0; k < MaxPeople(); k += 997 {
		if n := nhsAt(k); !nhsnumber.Valid(n) || !nhsnumber.InTestRange(n) {
			t.Errorf("entry %d: %s is not a valid test-range NHS number", k, n)
		}
	}
}

// The disagreements a master patient index must cope with all occur, and
// each organisation's copy still belongs to one true person.
func TestPatientCopiesDisagreeInEveryRealisticWay(t *testing.T) {
	dir, _ := sharedRegion(t)
	truth := map[string]string{}
	for _, row := range readCSV(t, filepath.Join(dir, "truth.csv"))[1:] {
		truth[row[0]+"/"+row[1]] = row[2]
	}
	type demo struct{ family, given, birth, postcode, nhs string }
	of := func(r fhir.Object) demo {
		n := r["name"].([]any)[0].(fhir.Object)
		a := r["address"].([]any)[0].(fhir.Object)
		return demo{n["family"].(string), n["given"].([]any)[0].(string), r["birthDate"].(string), a["postalCode"].(string), nhsOf(r)}
	}
	gp := map[string]demo{}
	var others []struct {
		person string
		d      demo
	}
	eachResource(t, dir, func(ods string, r fhir.Object, _ []byte) {
		if fhir.ResourceType(r) != "Patient" {
			return
		}
		person := truth[ods+"/"+fhir.ID(r)]
		if strings.HasPrefix(ods, "Z9") && len(ods) == 6 {
			gp[person] = of(r)
			return
		}
		others = append(others, struct {
			person string
			d      demo
		}{person, of(r)})
	})
	counts := map[string]int{}
	for _, o := range others {
		g := gp[o.person]
		if o.d.nhs == "" {
			counts["missing NHS number"]++
		}
		if o.d.family != g.family {
			counts["different surname"]++
		}
		if o.d.given != g.given {
			counts["different given name"]++
		}
		if o.d.given == g.family && o.d.family == g.given {
			counts["given and family swapped"]++
		}
		if o.d.postcode != g.postcode {
			counts["different address"]++
		}
		if o.d.birth != g.birth {
			switch {
			case o.d.birth[:4] == g.birth[:4] && o.d.birth[5:7] == g.birth[8:10] && o.d.birth[8:10] == g.birth[5:7]:
				counts["day and month swapped"]++
			case o.d.birth[:8] == g.birth[:8]:
				counts["day one off"]++
			default:
				t.Errorf("person %s: birth date %s at one organisation, %s at the GP: only a day/month swap or a day one off is modelled", o.person, o.d.birth, g.birth)
			}
		}
	}
	for _, kind := range []string{"missing NHS number", "different surname", "different given name", "different address", "day and month swapped", "day one off", "given and family swapped"} {
		if counts[kind] == 0 {
			t.Errorf("no Patient copy with a %s", kind)
		}
	}
	if counts["missing NHS number"] > len(others)/5 {
		t.Errorf("%d of %d copies lack an NHS number; want a minority", counts["missing NHS number"], len(others))
	}
}

// Sensitive records carry the labels issue 6's rules act on: everything
// clinical at the mental health trust is PSY and restricted, and very
// restricted records exist only at GP practices.
func TestSensitivityLabels(t *testing.T) {
	dir, _ := sharedRegion(t)
	seen := map[string]int{}
	eachResource(t, dir, func(ods string, r fhir.Object, _ []byte) {
		var labels []string
		if m, ok := r["meta"].(fhir.Object); ok {
			for _, s := range m["security"].([]any) {
				c := s.(fhir.Object)
				switch c["system"] {
				case "http://terminology.hl7.org/CodeSystem/v3-ActCode", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality":
				default:
					t.Errorf("%s/%s: label system %v", ods, fhir.ID(r), c["system"])
				}
				labels = append(labels, c["code"].(string))
				seen[c["code"].(string)]++
			}
		}
		typ := fhir.ResourceType(r)
		clinical := typ == "Condition" || typ == "Encounter" || typ == "EpisodeOfCare" || typ == "CarePlan"
		if ods == "RZ8" && clinical && !(slicesContains(labels, "PSY") && slicesContains(labels, "R")) {
			t.Errorf("%s/%s at the mental health trust has labels %v, want PSY and R", typ, fhir.ID(r), labels)
		}
		if slicesContains(labels, "V") && !(strings.HasPrefix(ods, "Z9") && len(ods) == 6) {
			t.Errorf("%s/%s at %s is very restricted; only GP practices hold V records", typ, fhir.ID(r), ods)
		}
	})
	for _, code := range []string{"PSY", "STD", "SEX", "ETH", "SDV", "R", "V"} {
		if seen[code] == 0 {
			t.Errorf("no record labelled %s", code)
		}
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
