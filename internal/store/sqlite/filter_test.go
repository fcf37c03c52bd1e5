package sqlite_test

import (
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
)

// TestFilterReuse: the SQL of a filter is kept and reused (filterTest), so
// the same filter must keep giving its own answer, and two filters that
// differ anywhere, however little, never share one.
func TestFilterReuse(t *testing.T) {
	s := open(t)
	putAll(t, s, searchFixture())
	obs := []string{"Observation"}
	pats := []string{"Patient"}
	grant := func(g store.Grant) *store.Filter { return &store.Filter{Grants: []store.Grant{g}} }
	changing := grant(store.Grant{Patients: []string{"a"}})
	for _, tc := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"a filter", store.Query{Types: obs, Filter: changing}, []string{"Observation/o1", "Observation/o2"}},
		{"the same content in another filter", store.Query{Types: obs, Filter: grant(store.Grant{Patients: []string{"a"}})}, []string{"Observation/o1", "Observation/o2"}},
		{"another person", store.Query{Types: obs, Filter: grant(store.Grant{Patients: []string{"c"}})}, nil},
		{"no type test (nil) lets every type through", store.Query{Types: pats, Filter: grant(store.Grant{Types: nil})}, []string{"Patient/a", "Patient/b", "Patient/c"}},
		{"an empty type list (not nil) lets nothing through", store.Query{Types: pats, Filter: grant(store.Grant{Types: []string{}})}, nil},
		{"an empty people list (not nil) lets nothing through", store.Query{Types: pats, Filter: grant(store.Grant{Patients: []string{}})}, nil},
		{"a label denied in any system", store.Query{Types: pats, Filter: grant(store.Grant{DenyLabels: []store.Label{{Code: "R"}}})}, []string{"Patient/a", "Patient/c"}},
		{"the same label denied in another system only", store.Query{Types: pats, Filter: grant(store.Grant{DenyLabels: []store.Label{{System: "other", Code: "R"}}})}, []string{"Patient/a", "Patient/b", "Patient/c"}},
		{"a label of any characters is compared as it is", store.Query{Types: pats, Filter: grant(store.Grant{DenyLabels: []store.Label{{Code: "R' OR 1=1 --"}, {System: "o'ther", Code: "R"}}})}, []string{"Patient/a", "Patient/b", "Patient/c"}},
		{"a source", store.Query{Types: pats, Filter: grant(store.Grant{Sources: []string{"https://x/ods/RA"}})}, []string{"Patient/a"}},
		{"a longer source", store.Query{Types: pats, Filter: grant(store.Grant{Sources: []string{"https://x/ods/RAB"}})}, []string{"Patient/c"}},
		// A source holding "#" is matched as a whole: the store cannot cut
		// the stored value at its first "#" for it.
		{"a source with a fragment admits that fragment", store.Query{Types: pats, Filter: grant(store.Grant{Sources: []string{"https://x/ods/RA#req1"}})}, []string{"Patient/a"}},
		{"a source with another fragment admits nothing", store.Query{Types: pats, Filter: grant(store.Grant{Sources: []string{"https://x/ods/RA#req"}})}, nil},
		{"several sources, one with a fragment", store.Query{Types: pats, Filter: grant(store.Grant{Sources: []string{"https://x/ods/RA#req1", "https://x/ods/RAB"}})}, []string{"Patient/a", "Patient/c"}},
	} {
		for round := range 2 {
			got := searchKeys(t, s, tc.q)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s (round %d): got %v, want %v", tc.name, round, got, tc.want)
			}
		}
	}
	// A filter changed in place after it was used is answered by what it
	// now says.
	changing.Grants[0].Patients[0] = "c"
	if got := searchKeys(t, s, store.Query{Types: pats, Filter: changing}); !slices.Equal(got, []string{"Patient/c"}) {
		t.Errorf("a filter changed after use: got %v, want [Patient/c]", got)
	}
}
