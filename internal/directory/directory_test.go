package directory_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

const hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

func TestDirectory(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			d := directory.New(b.Open(t))
			if err := d.CreateOrg(ctx, directory.Organisation{ODS: "rxx", Type: "acute-trust", Name: "Riverside"}); err != nil {
				t.Fatal(err)
			}
			if o, err := d.Org(ctx, "RXX"); err != nil || o.Type != "acute-trust" {
				t.Errorf("Org RXX: %+v, %v (the ODS code is kept in capitals)", o, err)
			}
			for _, bad := range []directory.Organisation{
				{ODS: "R", Type: "acute-trust"}, {ODS: "RX-1", Type: "acute-trust"}, {ODS: "RYY", Type: "hospital"},
			} {
				if err := d.CreateOrg(ctx, bad); !fhir.IsKind(err, fhir.EInvalid) {
					t.Errorf("CreateOrg %+v: %v, want invalid", bad, err)
				}
			}
			for _, c := range []struct {
				name string
				u    directory.User
				kind fhir.Kind
			}{
				{"a bad name", directory.User{Name: "Alice Smith", PasswordHash: hash}, fhir.EInvalid},
				{"no password hash", directory.User{Name: "a"}, fhir.EInvalid},
				{"a role at an unknown organisation", directory.User{Name: "a", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RZZ", Role: "nurse"}}}, fhir.EInvalid},
				{"a patient role at an organisation", directory.User{Name: "a", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "patient"}}}, fhir.EInvalid},
				{"a staff role about a patient", directory.User{Name: "a", PasswordHash: hash, Roles: []directory.Assignment{{Patient: "p1", Role: "nurse"}}}, fhir.EInvalid},
				{"one role twice", directory.User{Name: "a", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "nurse"}, {Org: "RXX", Role: "nurse", FHIRUser: "Practitioner/a"}}}, fhir.EInvalid},
				{"a bad fhirUser", directory.User{Name: "a", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "nurse", FHIRUser: "Organization/x"}}}, fhir.EInvalid},
			} {
				if err := d.CreateUser(ctx, &c.u); !fhir.IsKind(err, c.kind) {
					t.Errorf("CreateUser with %s: %v, want %s", c.name, err, c.kind)
				}
			}
			if err := d.CreateUser(ctx, &directory.User{Name: "alice", PasswordHash: hash}); err != nil {
				t.Fatal(err)
			}
			// Concurrent role changes on one account all land (compare-and-swap).
			roles := []string{"nurse", "clinician", "paramedic", "pharmacist", "admin-clerk", "care-worker"}
			var wg sync.WaitGroup
			for _, r := range roles {
				wg.Go(func() {
					if _, err := d.AddRole(ctx, "alice", directory.Assignment{Org: "RXX", Role: r}); err != nil {
						t.Errorf("AddRole %s: %v", r, err)
					}
				})
			}
			wg.Wait()
			if u, err := d.User(ctx, "alice"); err != nil || len(u.Roles) != len(roles) {
				t.Errorf("alice after %d concurrent AddRole: %+v, %v", len(roles), u, err)
			}
			for _, s := range []struct {
				in   string
				want directory.Assignment
			}{
				{"rxx:nurse", directory.Assignment{Org: "RXX", Role: "nurse"}},
				{"patient:Patient/p1", directory.Assignment{Role: "patient", Patient: "p1", FHIRUser: "Patient/p1"}},
				{"proxy:Patient/p1,RelatedPerson/r1", directory.Assignment{Role: "proxy", Patient: "p1", FHIRUser: "RelatedPerson/r1"}},
			} {
				if got, err := directory.ParseAssignment(s.in); err != nil || got != s.want {
					t.Errorf("ParseAssignment(%q) = %+v, %v; want %+v", s.in, got, err, s.want)
				}
			}
		})
	}
}
