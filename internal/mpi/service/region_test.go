package service_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/synth"
)

// regionPatient is one organisation's Patient of the synthetic region.
type regionPatient struct {
	key  string // "<ODS>/<id>", the truth file's key
	org  int
	body []byte
}

// regionPatients generates a region and returns its Patients in the order
// organisations would join the shared record (organisation by organisation,
// so the records of one person arrive far apart), with the truth.
func regionPatients(t testing.TB, people int, seed uint64) ([]regionPatient, map[string]string) {
	t.Helper()
	g := synth.New(synth.Options{People: people, Seed: seed})
	orgs := g.Region().Orgs
	var out []regionPatient
	truth := map[string]string{}
	for i := 0; i < people; i++ {
		_, recs, rows, _ := g.Person(i)
		for _, r := range recs {
			if r.Type == "Patient" {
				out = append(out, regionPatient{key: orgs[r.Org].ODS + "/" + r.ID, org: r.Org, body: r.JSON})
			}
		}
		for _, row := range rows {
			truth[row.ODS+"/"+row.Patient] = row.Person
		}
	}
	slices.SortStableFunc(out, func(a, b regionPatient) int { return a.org - b.org })
	return out, truth
}

// pairQuality compares the persons found with the truth over pairs of
// records: precision is the share of linked pairs that are one person,
// recall the share of true pairs that were linked.
func pairQuality(found, truth map[string]string) (precision, recall float64, tp, fp, fn int) {
	group := func(m map[string]string) map[string][]string {
		g := map[string][]string{}
		for k, v := range m {
			g[v] = append(g[v], k)
		}
		return g
	}
	same := func(m map[string]string, a, b string) bool { return m[a] != "" && m[a] == m[b] }
	for _, ks := range group(found) {
		for i := range ks {
			for j := i + 1; j < len(ks); j++ {
				if same(truth, ks[i], ks[j]) {
					tp++
				} else {
					fp++
				}
			}
		}
	}
	for _, ks := range group(truth) {
		for i := range ks {
			for j := i + 1; j < len(ks); j++ {
				if !same(found, ks[i], ks[j]) {
					fn++
				}
			}
		}
	}
	precision, recall = 1, 1
	if tp+fp > 0 {
		precision = float64(tp) / float64(tp+fp)
	}
	if tp+fn > 0 {
		recall = float64(tp) / float64(tp+fn)
	}
	return precision, recall, tp, fp, fn
}

// TestRegionLinkedThroughTheServer loads a synthetic region the way a node
// fills up: the first organisations' Patients by an offline import (no
// index), then the server starts (training the model on them and linking
// them), then every other organisation's Patients arrive one by one through
// the engine and are linked incrementally. The persons the server holds are
// compared with the region's truth file: the targets for the
// synthetic region (precision >= 0.999, recall >= 0.98) hold for the
// incremental index too.
func TestRegionLinkedThroughTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and loads a region")
	}
	const people = 1000
	pats, truth := regionPatients(t, people, 7)
	st := backend.OpenSQLiteForTest(t)
	ctx := context.Background()
	plain := engine.New(st, engine.Config{BaseURL: testBase})
	half := len(pats) / 2
	keyOf := map[string]string{} // "Patient/<server id>" -> truth key
	load := func(eng *engine.Engine, ps []regionPatient) time.Duration {
		var worst time.Duration
		for _, p := range ps {
			start := time.Now()
			out, err := eng.Create(ctx, "Patient", p.body, engine.WriteOptions{})
			if err != nil {
				t.Fatalf("%s: %v", p.key, err)
			}
			worst = max(worst, time.Since(start))
			keyOf["Patient/"+out.Version.ID] = p.key
		}
		return worst
	}
	load(plain, pats[:half])

	// The cost of a create without the index, for comparison: the other
	// half's first 300 Patients on a store of their own.
	other := engine.New(backend.OpenSQLiteForTest(t), engine.Config{BaseURL: testBase})
	var plainWorst time.Duration
	start := time.Now()
	for _, p := range pats[half : half+300] {
		t0 := time.Now()
		if _, err := other.Create(ctx, "Patient", p.body, engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		plainWorst = max(plainWorst, time.Since(t0))
	}
	plainPer := time.Since(start) / 300

	t0 := time.Now()
	n := open(t, st)
	opened := time.Since(t0)
	t0 = time.Now()
	caught, err := n.mpi.CatchUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start (load %d Patients, train, index): %v; CatchUp linked %d in %v", half, opened.Round(time.Millisecond), caught, time.Since(t0).Round(time.Millisecond))
	m := n.mpi.Model()
	t.Logf("model trained on %d pairs: link >= %.1f, review >= %.1f", m.Pairs, m.Link, m.Review)
	caughtUp := n.mpi.Stats()
	start = time.Now()
	worst := load(n.eng, pats[half:])
	per := time.Since(start) / time.Duration(len(pats)-half)
	ls := n.mpi.Stats()
	ls.Linked -= caughtUp.Linked
	ls.Total -= caughtUp.Total
	ls.Writes -= caughtUp.Writes
	ls.Write -= caughtUp.Write
	ls.Wrote -= caughtUp.Wrote
	t.Logf("%d Patients created through the indexed engine: %v each on average (write and link), worst %v; without the index %v each, worst %v",
		len(pats)-half, per.Round(time.Microsecond), worst.Round(time.Microsecond), plainPer.Round(time.Microsecond), plainWorst.Round(time.Microsecond))
	t.Logf("linking alone (AfterWrite): %d Patients, %v each on average, worst %v; of which writing %d transactions %v each (%.1f resources each)",
		ls.Linked, (ls.Total / time.Duration(max(ls.Linked, 1))).Round(time.Microsecond), ls.Worst.Round(time.Microsecond),
		ls.Writes, (ls.Write / time.Duration(max(ls.Writes, 1))).Round(time.Microsecond), float64(ls.Wrote)/float64(max(ls.Writes, 1)))

	found := map[string]string{}
	for ref, key := range keyOf {
		pid, ok := n.mpi.PersonOf(ref)
		if !ok {
			t.Fatalf("%s (%s) has no person", ref, key)
		}
		found[key] = pid
	}
	precision, recall, tp, fp, fn := pairQuality(found, truth)
	t.Logf("%d Patients of %d people: pairs linked right %d, wrongly %d, missed %d: precision %.4f recall %.4f",
		len(pats), people, tp, fp, fn, precision, recall)
	if precision < 0.999 {
		t.Errorf("precision %.4f, want >= 0.999", precision)
	}
	if recall < 0.98 {
		t.Errorf("recall %.4f, want >= 0.98", recall)
	}
	reviews := len(search(t, n, "Task", "_count=1000&status=requested"))
	t.Logf("open review Tasks: %d", reviews)
}

// BenchmarkCreatePatient measures a Patient create on SQLite with and
// without the index, over a store holding a region of 600 people: the
// difference is the cost of linking one new Patient incrementally (the
// decision, the Person version and the Patient.link updates, written in a
// second durable transaction).
func BenchmarkCreatePatient(b *testing.B) {
	pats, _ := regionPatients(b, 600, 11)
	hold := 300
	base, rest := pats[:len(pats)-hold], pats[len(pats)-hold:]
	for _, indexed := range []bool{false, true} {
		name := "plain"
		if indexed {
			name = "indexed"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st := backend.OpenSQLiteForTest(b)
			eng := engine.New(st, engine.Config{BaseURL: testBase})
			if indexed {
				eng = open(b, st).eng
			}
			for _, p := range base {
				if _, err := eng.Create(ctx, "Patient", p.body, engine.WriteOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				if _, err := eng.Create(ctx, "Patient", rest[i%hold].body, engine.WriteOptions{}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
