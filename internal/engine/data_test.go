package engine

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// TestDataBundlesLoadAndReadBackEqual is the issue's first "done when": every
// Synthea bundle (lenient) and every US Core bundle (strict) loads as a
// transaction, and every resource reads back equal to what was sent apart
// from meta.versionId, meta.lastUpdated, server-assigned ids, rewritten
// references and, for lenient loads, the unknown elements the response
// reported as dropped.
func TestDataBundlesLoadAndReadBackEqual(t *testing.T) {
	synthea, _ := filepath.Glob(filepath.Join(sharedData(t, "synthea-r4"), "*.json.gz"))
	uscore, _ := filepath.Glob(filepath.Join(sharedData(t, "us-core"), "*.json"))
	if len(synthea) == 0 || len(uscore) == 0 {
		t.Fatalf("no data bundles found (synthea %d, us-core %d)", len(synthea), len(uscore))
	}
	type job struct {
		path    string
		lenient bool
	}
	var jobs []job
	for _, p := range uscore {
		jobs = append(jobs, job{p, false})
	}
	for _, p := range synthea {
		jobs = append(jobs, job{p, true})
	}
	onEveryBackend(t, func(t *testing.T, e *Engine, _ store.Store) {
		ctx := context.Background()
		start := time.Now()
		var (
			mu        sync.Mutex
			resources int
			dropped   int
		)
		work := make(chan job)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for j := range work {
					body := readData(t, j.path)
					name := filepath.Base(j.path)
					resp, err := e.Bundle(ctx, body, WriteOptions{Lenient: j.lenient})
					if err == nil && name == knownDefectBundle && !j.lenient {
						t.Errorf("%s: loaded strictly, but it holds an unknown element (Observation.effectivePeriod.stop)", name)
					}
					if err != nil && !j.lenient && knownStrictFailure(name, err) {
						// The defect is reported precisely; the bundle then
						// loads leniently with exactly that element dropped.
						resp, err = e.Bundle(ctx, body, WriteOptions{Lenient: true})
					}
					if err != nil {
						t.Errorf("%s: transaction failed: %v", name, err)
						continue
					}
					n, d := checkReadBack(t, e, name, body, resp)
					mu.Lock()
					resources += n
					dropped += d
					mu.Unlock()
				}
			})
		}
		for _, j := range jobs {
			work <- j
		}
		close(work)
		wg.Wait()
		d := time.Since(start)
		t.Logf("%d bundles, %d resources loaded and read back in %v (%.0f resources/s); %d unknown elements dropped leniently", len(jobs), resources, d.Round(time.Millisecond), float64(resources)/d.Seconds(), dropped)
		if dropped == 0 {
			t.Errorf("no unknown element was reported dropped, but the Synthea data and %s hold some", knownDefectBundle)
		}
	})
}

const knownDefectBundle = "uscore_bundle_patient_355.json"

// knownStrictFailure reports whether err is the one real defect of the US
// Core data: Observation.effectivePeriod.stop (Synthea's CSV column name) in
// uscore_bundle_patient_355.json, which strict validation must reject
// naming the element.
func knownStrictFailure(name string, err error) bool {
	fe, ok := err.(*fhir.Error)
	if name != knownDefectBundle || !ok || fe.Kind != fhir.EInvalid {
		return false
	}
	for _, is := range fe.Issues {
		if !strings.HasPrefix(is.Expression, "Bundle.entry[") || !strings.HasSuffix(is.Expression, "].resource.effectivePeriod.stop") {
			return false
		}
	}
	return len(fe.Issues) > 0
}

// checkReadBack compares every resource of a loaded bundle with what was
// sent and returns how many it checked and how many dropped elements the
// response reported.
func checkReadBack(t *testing.T, e *Engine, name string, body []byte, resp fhir.Object) (checked, dropped int) {
	sent := parseBody(t, body)
	entries, _ := sent["entry"].([]any)
	rentries, _ := resp["entry"].([]any)
	if len(rentries) != len(entries) {
		t.Errorf("%s: %d response entries for %d entries", name, len(rentries), len(entries))
		return 0, 0
	}
	// fullUrl -> Type/id, from the response locations.
	ids := map[string]string{}
	locs := make([][2]string, len(entries))
	for i, re := range rentries {
		r := re.(fhir.Object)["response"].(fhir.Object)
		loc, _ := r["location"].(string)
		parts := strings.Split(loc, "/")
		if len(parts) != 4 || parts[2] != "_history" {
			t.Errorf("%s: entry %d: location %q is not Type/id/_history/v", name, i, loc)
			return 0, 0
		}
		locs[i] = [2]string{parts[0], parts[1]}
		if fu, ok := entries[i].(fhir.Object)["fullUrl"].(string); ok {
			ids[fu] = parts[0] + "/" + parts[1]
		}
	}
	for i, en := range entries {
		want := en.(fhir.Object)["resource"].(fhir.Object)
		// Lenient loads: drop what the response said it dropped.
		r := rentries[i].(fhir.Object)["response"].(fhir.Object)
		if oc, ok := r["outcome"]; ok {
			for _, is := range reparse(t, fhir.Object{"o": oc})["o"].(fhir.Object)["issue"].([]any) {
				exprs, _ := is.(fhir.Object)["expression"].([]any)
				for _, x := range exprs {
					dropped++
					if !removePath(want, x.(string)) {
						t.Errorf("%s: entry %d: reported drop %s is not in the sent resource", name, i, x)
					}
				}
			}
		}
		rewriteRefs(want, ids)
		v, err := e.Read(context.Background(), locs[i][0], locs[i][1])
		if err != nil {
			t.Errorf("%s: entry %d: read %s/%s: %v", name, i, locs[i][0], locs[i][1], err)
			continue
		}
		got := parseBody(t, v.Body)
		if fhir.ID(got) != locs[i][1] {
			t.Errorf("%s: entry %d: stored id %q, location says %q", name, i, fhir.ID(got), locs[i][1])
		}
		if m, ok := got["meta"].(fhir.Object); !ok || m["versionId"] != strconv.FormatInt(v.VersionID, 10) || m["lastUpdated"] != fhir.FormatInstant(v.LastUpdated) {
			t.Errorf("%s: entry %d: meta %v does not carry version %d / %v", name, i, got["meta"], v.VersionID, v.LastUpdated)
		}
		stripServerOwned(got)
		stripServerOwned(want)
		if !fhir.Equal(got, want) {
			t.Errorf("%s: entry %d (%s): read back differs\n got: %.2000s\nwant: %.2000s", name, i, locs[i][0], fhir.Marshal(got), fhir.Marshal(want))
		}
	}
	return len(entries), dropped
}

// stripServerOwned removes id, meta.versionId and meta.lastUpdated (and a
// meta left empty by that).
func stripServerOwned(r fhir.Object) {
	delete(r, "id")
	if m, ok := r["meta"].(fhir.Object); ok {
		delete(m, "versionId")
		delete(m, "lastUpdated")
		if len(m) == 0 {
			delete(r, "meta")
		}
	}
}

// rewriteRefs applies the fullUrl -> Type/id mapping to every reference.
func rewriteRefs(v any, ids map[string]string) {
	switch x := v.(type) {
	case fhir.Object:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "reference" {
				if to, ok := ids[s]; ok {
					x[k] = to
				}
				continue
			}
			rewriteRefs(val, ids)
		}
	case []any:
		for _, it := range x {
			rewriteRefs(it, ids)
		}
	}
}

// removePath deletes the element a FHIRPath location such as
// "Observation.component[1].foo" names from resource r; it reports whether
// the element was there.
func removePath(r fhir.Object, expr string) bool {
	_, rest, ok := strings.Cut(expr, ".")
	if !ok {
		return false
	}
	var cur any = r
	segs := strings.Split(rest, ".")
	for k, seg := range segs {
		name, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			n, err := strconv.Atoi(seg[i+1 : len(seg)-1])
			if err != nil {
				return false
			}
			name, idx = seg[:i], n
		}
		o, ok := cur.(fhir.Object)
		if !ok {
			return false
		}
		val, ok := o[name]
		if !ok {
			return false
		}
		if k == len(segs)-1 && idx < 0 {
			delete(o, name)
			return true
		}
		if idx >= 0 {
			arr, ok := val.([]any)
			if !ok || idx >= len(arr) {
				return false
			}
			if k == len(segs)-1 {
				o[name] = append(arr[:idx:idx], arr[idx+1:]...)
				if len(o[name].([]any)) == 0 {
					delete(o, name)
				}
				return true
			}
			val = arr[idx]
		}
		cur = val
	}
	return false
}
