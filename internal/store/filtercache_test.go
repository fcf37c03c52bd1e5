package store_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
)

// TestFilterCacheFields: the cached SQL of a filter is compared field by
// field with the filter asking for it; a field added to store.Grant must be
// added to that comparison (filtercache.go: sameFilter, filterKey,
// copyFilter).
func TestFilterCacheFields(t *testing.T) {
	var names []string
	for f := range reflect.TypeFor[store.Grant]().Fields() {
		names = append(names, f.Name)
	}
	if want := []string{"Patients", "NoPatient", "Types", "Sources", "DenyLabels"}; !slices.Equal(names, want) {
		t.Errorf("store.Grant has fields %v; the filter cache compares %v", names, want)
	}
	if n := reflect.TypeFor[store.Filter]().NumField(); n != 1 {
		t.Errorf("store.Filter has %d fields; the filter cache compares Grants only", n)
	}
}

// TestFilterCache: a hit needs the same alias and an equal filter, told
// apart down to a nil list from an empty one, and what the cache returns
// is its own copy.
func TestFilterCache(t *testing.T) {
	var c store.FilterCache
	f := &store.Filter{Grants: []store.Grant{{Patients: []string{"a"}, Sources: []string{"s"}, DenyLabels: []store.Label{{Code: "R"}}}}}
	args := []any{"s"}
	c.Put("r", f, "SQL", args)
	args[0] = "changed after Put"
	if sql, got, ok := c.Get("r", f); !ok || sql != "SQL" || !reflect.DeepEqual(got, []any{"s"}) {
		t.Errorf("Get after Put: %q %v %v, want SQL [s] true", sql, got, ok)
	}
	if _, _, ok := c.Get("t", f); ok {
		t.Error("another alias hit")
	}
	for name, g := range map[string]store.Grant{
		"another person":             {Patients: []string{"b"}, Sources: []string{"s"}, DenyLabels: []store.Label{{Code: "R"}}},
		"no type test against none":  {Patients: []string{"a"}, Types: []string{}, Sources: []string{"s"}, DenyLabels: []store.Label{{Code: "R"}}},
		"another label system":       {Patients: []string{"a"}, Sources: []string{"s"}, DenyLabels: []store.Label{{System: "x", Code: "R"}}},
		"no denied labels":           {Patients: []string{"a"}, Sources: []string{"s"}},
		"no patient instead of some": {NoPatient: true, Sources: []string{"s"}, DenyLabels: []store.Label{{Code: "R"}}},
	} {
		if _, _, ok := c.Get("r", &store.Filter{Grants: []store.Grant{g}}); ok {
			t.Errorf("%s: hit", name)
		}
	}
	f.Grants[0].Patients[0] = "b"
	if _, _, ok := c.Get("r", f); ok {
		t.Error("a filter changed after Put hit the entry made before")
	}
}

func TestPlainLiteral(t *testing.T) {
	for v, want := range map[string]bool{
		"R": true, "http://terminology.hl7.org/CodeSystem/v3-Confidentiality": true, "SEX": true,
		"R' OR 1=1 --": false, "a?b": false, "$1": false, `a\b`: false, "é": false, "a b": false,
	} {
		if got := store.PlainLiteral(v); got != want {
			t.Errorf("PlainLiteral(%q) = %v, want %v", v, got, want)
		}
	}
}
