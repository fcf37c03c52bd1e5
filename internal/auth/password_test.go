package auth

import (
	"strings"
	"testing"
	"time"
)

func TestPasswordHashing(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q: want argon2id in PHC format with the OWASP parameters", h)
	}
	if !CheckPassword(h, "correct horse battery staple") {
		t.Error("the right password does not match")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
		if CheckPassword(h, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	h2, _ := HashPassword("correct horse battery staple")
	if h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if _, err := HashPassword("short"); err == nil {
		t.Error("a 5-character password was accepted")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5", "$argon2id$v=19$m=0,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5", "plain text"} {
		if CheckPassword(bad, "") || CheckPassword(bad, "plain text") {
			t.Errorf("malformed hash %q matches", bad)
		}
	}
}

func TestTOTPMatchesRFC6238(t *testing.T) {
	// RFC 6238 appendix B, SHA-1, the last six digits of each 8-digit value.
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // base32 of "12345678901234567890"
	for _, c := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		got, err := TOTPCode(secret, time.Unix(c.unix, 0))
		if err != nil || got != c.code {
			t.Errorf("T=%d: got %q, %v; want %s", c.unix, got, err, c.code)
		}
	}
}

func TestTOTPCheck(t *testing.T) {
	secret, _ := NewTOTPSecret()
	now := time.Unix(1_800_000_000, 0)
	code, _ := TOTPCode(secret, now)
	step, ok := CheckTOTP(secret, code, now, 0)
	if !ok {
		t.Fatal("the current code is refused")
	}
	if _, ok := CheckTOTP(secret, code, now, step); ok {
		t.Error("a code is accepted twice (its step was already used)")
	}
	if _, ok := CheckTOTP(secret, code, now.Add(30*time.Second), 0); !ok {
		t.Error("the previous step's code is refused (one step of clock skew is allowed)")
	}
	if _, ok := CheckTOTP(secret, code, now.Add(2*time.Minute), 0); ok {
		t.Error("a code four steps old is accepted")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := CheckTOTP(secret, bad, now, 0); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	if !strings.HasPrefix(TOTPURI("sharedcare", "alice", secret), "otpauth://totp/sharedcare:alice?") {
		t.Errorf("TOTPURI = %q", TOTPURI("sharedcare", "alice", secret))
	}
}

func TestGrantScopes(t *testing.T) {
	max := []string{"user/*.rs", "user/Observation.cruds", "patient/*.read", "offline_access", "system/*.cruds", "openid"}
	for _, c := range []struct {
		name      string
		requested string
		context   string
		want      string
	}{
		{"a scope within the maximum is granted as asked", "user/Patient.rs", "user", "user/Patient.rs"},
		{"permissions beyond the maximum are cut", "user/Patient.cruds", "user", "user/Patient.rs"},
		{"a type the maximum names gets its extra permissions", "user/Observation.cruds", "user", "user/Observation.cruds"},
		{"a wildcard request gets the wildcard and the named types' extras", "user/*.cruds", "user", "user/*.rs user/Observation.cruds"},
		{"v1 scopes are read in v2 form", "patient/Observation.read", "patient", "patient/Observation.rs"},
		{"scopes of another context are dropped", "system/*.cruds user/Patient.r", "user", "user/Patient.r"},
		{"a user cannot get system scopes through a patient login", "system/*.cruds", "patient", ""},
		{"non-resource scopes only when the maximum lists them", "offline_access online_access", "user", "offline_access"},
		{"openid is never granted: there is no id_token", "openid", "user", ""},
		{"scopes with a query are refused", "user/Observation.rs?category=vital-signs", "user", ""},
		{"malformed scopes are dropped", "user/*.xyz user/patient.rs user/*. */*.rs", "user", ""},
		{"each scope once", "user/Patient.rs user/Patient.read", "user", "user/Patient.rs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ScopeString(GrantScopes(strings.Fields(c.requested), max, c.context))
			if got != c.want {
				t.Errorf("GrantScopes(%q, %s) = %q, want %q", c.requested, c.context, got, c.want)
			}
		})
	}
}

// BenchmarkCheckPassword is the cost of one login's password check (and of
// one guess against a stolen hash):
//
//	go test -run '^$' -bench CheckPassword ./internal/auth
func BenchmarkCheckPassword(b *testing.B) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		CheckPassword(h, "correct horse battery staple")
	}
}
