package access_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// TestFilterForReusesNarrowing: a caller's repeated requests of one kind
// get the narrowed filter built once (a search by subject narrows the same
// way for every person the same grants include), and a reused narrowing is
// exactly the one a fresh decider computes for that request: it depends on
// which grants include the person, never on who asked before.
func TestFilterForReusesNarrowing(t *testing.T) {
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range backend.ForTests(t) {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			st := be.Open(t)
			accesstest.Load(t, engine.New(st, engine.Config{BaseURL: "http://127.0.0.1/fhir"}), time.Now())
			p := accesstest.Callers["gp-clinician"]
			c, err := access.CallerOf(&p)
			if err != nil {
				t.Fatal(err)
			}
			obs := []string{"Observation"}
			bySubject := func(id string) access.Narrow {
				return access.Narrow{Patients: []string{id}, Types: obs, InCompartment: true}
			}
			narrows := []struct {
				name string
				n    access.Narrow
			}{
				{"search by subject, a registered person", bySubject("alice")},
				{"search by subject, another registered person", bySubject("bob")},
				{"search by subject, a person of another practice", bySubject("dave")},
				{"search by subject, nobody known", bySubject("nobody")},
				{"two people, not one compartment", access.Narrow{Patients: []string{"alice", "dave"}, Types: obs}},
				{"one type, nobody named", access.Narrow{Types: obs}},
				{"a read of the practice's record", access.Narrow{Patients: []string{"alice"}, Types: obs, Source: access.Source(accesstest.GP1), Known: true}},
				{"a read of another organisation's record", access.Narrow{Patients: []string{"alice"}, Types: obs, Source: access.Source(accesstest.Acute), Known: true}},
			}
			d := access.New(st, pol)
			for round := range 2 {
				for _, tc := range narrows {
					got, err := d.FilterFor(ctx, c, access.OpSearch, tc.n)
					if err != nil {
						t.Fatal(err)
					}
					want, err := access.New(st, pol).FilterFor(ctx, c, access.OpSearch, tc.n)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("round %d, %s: got %+v, a fresh decider says %+v", round, tc.name, got, want)
					}
				}
			}
			// The same request again is answered with the filter already
			// built.
			for _, tc := range narrows {
				if tc.n.InCompartment {
					a, _ := d.FilterFor(ctx, c, access.OpSearch, tc.n)
					b, _ := d.FilterFor(ctx, c, access.OpSearch, tc.n)
					if a != b {
						t.Errorf("%s: built twice; want the narrowing reused", tc.name)
					}
				}
			}
			alice, _ := d.FilterFor(ctx, c, access.OpSearch, bySubject("alice"))
			dave, _ := d.FilterFor(ctx, c, access.OpSearch, bySubject("dave"))
			if reflect.DeepEqual(alice, dave) {
				t.Error("the practice's person and another practice's get the same filter: the test cannot tell a wrong reuse")
			}
		})
	}
}
