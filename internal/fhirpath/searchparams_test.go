package fhirpath

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// compiledParam is one search parameter's expression (and those of its
// composite components), compiled once.
type compiledParam struct {
	sp         *r4.SearchParam
	expr       *Expression
	components []*Expression
}

// compileSearchParams compiles every R4 search parameter expression,
// per resource type, failing the test for any that does not compile.
func compileSearchParams(t testing.TB) map[string][]compiledParam {
	t.Helper()
	cache := map[string]*Expression{}
	compile := func(typ, name, src string) *Expression {
		if e, ok := cache[src]; ok {
			return e
		}
		e, err := Compile(src)
		if err != nil {
			t.Errorf("%s search parameter %s: %q does not compile: %v", typ, name, src, err)
			return nil
		}
		cache[src] = e
		return e
	}
	out := map[string][]compiledParam{}
	for _, typ := range r4.ResourceTypes() {
		params := r4.SearchParams(typ)
		names := make([]string, 0, len(params))
		for n := range params {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			sp := params[n]
			if sp.Expression == "" {
				continue
			}
			cp := compiledParam{sp: sp, expr: compile(typ, n, sp.Expression)}
			for _, c := range sp.Components {
				cp.components = append(cp.components, compile(typ, n+" component", c.Expression))
			}
			if cp.expr != nil {
				out[typ] = append(out[typ], cp)
			}
		}
	}
	return out
}

func TestSearchParamsCompile(t *testing.T) {
	params := compileSearchParams(t)
	n := 0
	for _, ps := range params {
		n += len(ps)
	}
	if n < 1000 {
		t.Errorf("compiled %d search parameter expressions; want the R4 set (over 1000)", n)
	}
}

// TestSearchParamsOverSynthea is issue 4's done-when: every R4 search
// parameter expression evaluates without error over every resource of the
// Synthea set.
func TestSearchParamsOverSynthea(t *testing.T) {
	dir := sharedDir(t, "data/synthea-r4")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if len(files) == 0 {
		t.Skipf("no Synthea bundles in %s", dir)
	}
	params := compileSearchParams(t)
	var evalTime time.Duration
	failures := map[string]string{} // "Type.param: expression" -> first error
	resources, evaluations, nodes := 0, 0, 0
	for _, f := range files {
		bundle := readBundle(t, f)
		entries, _ := bundle["entry"].([]any)
		for _, x := range entries {
			e, _ := x.(fhir.Object)
			res, _ := e["resource"].(fhir.Object)
			if res == nil {
				continue
			}
			resources++
			typ := fhir.ResourceType(res)
			began := time.Now()
			for _, cp := range params[typ] {
				evaluations++
				out, err := cp.expr.Evaluate(res)
				if err != nil {
					key := typ + "." + cp.sp.Name + ": " + cp.sp.Expression
					if _, seen := failures[key]; !seen {
						failures[key] = err.Error()
					}
					continue
				}
				nodes += len(out)
				for _, v := range out {
					for i, ce := range cp.components {
						if ce == nil {
							continue
						}
						if _, err := ce.EvaluateOn(res, v); err != nil {
							key := typ + "." + cp.sp.Name + " component: " + cp.sp.Components[i].Expression
							if _, seen := failures[key]; !seen {
								failures[key] = err.Error()
							}
						}
					}
				}
			}
			evalTime += time.Since(began)
		}
	}
	keys := make([]string, 0, len(failures))
	for k := range failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Errorf("%s\n\tfails: %s", k, failures[k])
	}
	t.Logf("%d resources from %d bundles: %d evaluations producing %d nodes in %v (%.2f µs per evaluation, %.0f µs per resource for all its parameters)",
		resources, len(files), evaluations, nodes, evalTime.Round(time.Millisecond),
		float64(evalTime.Nanoseconds())/1e3/float64(max(evaluations, 1)), float64(evalTime.Nanoseconds())/1e3/float64(max(resources, 1)))
	if resources == 0 {
		t.Error("no resources read from the Synthea bundles")
	}
}

func readBundle(t testing.TB, path string) fhir.Object {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fhir.ParseObject(data, 1000)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// TestSearchParamsOverExamples evaluates every search parameter of each
// example resource of the FHIRPath suite, the US Core bundles and the PDS
// examples (and of every resource inside a Bundle): types and shapes the
// Synthea set does not have.
func TestSearchParamsOverExamples(t *testing.T) {
	var files []string
	for _, sub := range []string{"conformance/fhirpath/r4", "data/us-core", "data/pds-examples"} {
		found, _ := filepath.Glob(filepath.Join(sharedDir(t, sub), "*.json"))
		files = append(files, found...)
	}
	params := compileSearchParams(t)
	n := 0
	var check func(name string, res fhir.Object)
	check = func(name string, res fhir.Object) {
		typ := fhir.ResourceType(res)
		for _, cp := range params[typ] {
			n++
			out, err := cp.expr.Evaluate(res)
			if err != nil {
				t.Errorf("%s: %s.%s (%s): %v", name, typ, cp.sp.Name, cp.sp.Expression, err)
			}
			for _, v := range out {
				for _, ce := range cp.components {
					if _, err := ce.EvaluateOn(res, v); err != nil {
						t.Errorf("%s: %s.%s component %s: %v", name, typ, cp.sp.Name, ce, err)
					}
				}
			}
		}
		entries, _ := res["entry"].([]any)
		for _, x := range entries {
			e, _ := x.(fhir.Object)
			if r, ok := e["resource"].(fhir.Object); ok {
				check(name+" entry", r)
			}
		}
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := fhir.ParseObject(raw, 1000)
		if err != nil || fhir.ResourceType(res) == "" {
			continue // not a resource (the licence notes)
		}
		check(filepath.Base(f), res)
	}
	if n == 0 {
		t.Error("no search parameter evaluated")
	}
	t.Logf("%d evaluations over %d example files", n, len(files))
}
