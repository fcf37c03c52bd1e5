package access_test

import (
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/access"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" = not a resource scope sharedcare honours
	}{
		{"v2 read and search", "patient/Observation.rs", "patient/Observation.rs"},
		{"v2 everything on every type", "system/*.cruds", "system/*.cruds"},
		{"v1 read is read and search", "user/Patient.read", "user/Patient.rs"},
		{"v1 write is create, update, delete", "user/Patient.write", "user/Patient.cud"},
		{"v1 star is everything", "patient/*.*", "patient/*.cruds"},
		{"letters out of order are refused", "user/Patient.sr", ""},
		{"repeated letters are refused", "user/Patient.rr", ""},
		{"unknown letters are refused", "user/Patient.x", ""},
		{"unknown context is refused", "admin/*.cruds", ""},
		{"a v2 query is not honoured", "patient/Observation.rs?category=laboratory", ""},
		{"identity scopes are not resource scopes", "openid", ""},
		{"lower-case type is refused", "user/patient.rs", ""},
		{"empty permissions are refused", "user/Patient.", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := access.ParseScope(tc.in)
			got := ""
			if ok {
				got = s.String()
			}
			if got != tc.want {
				t.Errorf("ParseScope(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestGrantedScopes(t *testing.T) {
	g := access.GrantedScopes("user", []string{"user/Patient.rs", "user/Observation.read", "patient/*.cruds", "system/*.cruds"})
	for _, tc := range []struct {
		typ  string
		op   rune
		want bool
	}{
		{"Patient", access.OpRead, true},
		{"Patient", access.OpSearch, true},
		{"Patient", access.OpUpdate, false},
		{"Observation", access.OpSearch, true},
		{"Condition", access.OpRead, false}, // patient/ and system/ scopes do not count for a user
	} {
		if got := g.Allows(tc.typ, tc.op); got != tc.want {
			t.Errorf("Allows(%s, %c) = %v, want %v", tc.typ, tc.op, got, tc.want)
		}
	}
}

func TestIntersectScopes(t *testing.T) {
	for _, tc := range []struct {
		name           string
		requested, max []string
		want           []string
	}{
		{"a request within the maximum is kept", []string{"user/Patient.rs"}, []string{"user/*.cruds"}, []string{"user/Patient.rs"}},
		{"letters beyond the maximum are cut", []string{"user/Patient.cruds"}, []string{"user/Patient.rs"}, []string{"user/Patient.rs"}},
		{"a type outside the maximum is dropped", []string{"user/Condition.rs"}, []string{"user/Patient.rs"}, nil},
		{"a wildcard request shrinks to the maximum's types", []string{"user/*.rs"}, []string{"user/Patient.read", "user/Observation.r"}, []string{"user/Observation.r", "user/Patient.rs"}},
		{"another context is not a maximum", []string{"system/*.rs"}, []string{"user/*.cruds"}, nil},
		{"identity scopes pass only when registered", []string{"openid", "fhirUser"}, []string{"openid"}, []string{"openid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := access.IntersectScopes(tc.requested, tc.max)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
