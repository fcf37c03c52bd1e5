package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

const base = "http://127.0.0.1:8080/fhir"

func newAuthority(t *testing.T, issuer string) (*Authority, ed25519.PrivateKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(key, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return a, key
}

// sign makes a token over arbitrary claims with the given signer, so tests
// can forge what Issue would never produce.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func goodClaims(now time.Time) claims {
	return claims{
		Claims: jwt.Claims{Issuer: base, Audience: jwt.Audience{base}, Subject: "admin",
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)), ID: "x"},
		Scope: FullAccessScope, Kind: KindAdmin,
	}
}

func TestIssuedAdminTokenVerifies(t *testing.T) {
	a, _ := newAuthority(t, base)
	tok, err := a.IssueAdmin(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Subject != "admin" || p.Kind != KindAdmin || !p.HasScope(FullAccessScope) || p.TokenID == "" {
		t.Errorf("principal = %+v, want admin with %s and a jti", p, FullAccessScope)
	}
	if d := time.Until(p.Expires); d > time.Hour || d < 59*time.Minute {
		t.Errorf("expires in %s, want about 1h", d)
	}
	// The second verification comes from the cache and gives the same answer.
	p2, err := a.Verify(context.Background(), tok)
	if err != nil || p2 != p {
		t.Errorf("cached Verify = %v, %v; want the same principal", p2, err)
	}
}

func TestIssueRefusesLongLifetimes(t *testing.T) {
	a, _ := newAuthority(t, base)
	for _, ttl := range []time.Duration{0, -time.Second, time.Hour + time.Second, 24 * time.Hour} {
		if _, err := a.IssueAdmin(ttl); err == nil {
			t.Errorf("IssueAdmin(%s) succeeded, want a refusal", ttl)
		}
	}
}

func TestVerifyRefusesAttacks(t *testing.T) {
	a, key := newAuthority(t, base)
	now := time.Now()
	other, _ := newAuthority(t, base) // same issuer, different key
	otherAud, _ := newAuthority(t, "http://elsewhere.example/fhir")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	valid, _ := a.IssueAdmin(time.Hour)
	parts := strings.Split(valid, ".")
	fromOther, _ := other.IssueAdmin(time.Hour)
	otherParts := strings.Split(fromOther, ".")

	hsHeader := b64(map[string]string{"alg": "HS256", "typ": "JWT", "kid": a.kid})
	mac := hmac.New(sha256.New, key.Public().(ed25519.PublicKey))
	mac.Write([]byte(hsHeader + "." + parts[1]))
	hs256WithPublicKey := hsHeader + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	expired := goodClaims(now.Add(-2 * time.Hour))
	future := goodClaims(now.Add(10 * time.Minute))
	tooLong := goodClaims(now)
	tooLong.Expiry = jwt.NewNumericDate(now.Add(2 * time.Hour))
	noExp := goodClaims(now)
	noExp.Expiry = nil
	noKind := goodClaims(now)
	noKind.Kind = ""
	wrongIss := goodClaims(now)
	wrongIss.Issuer = "http://evil.example/fhir"

	tests := []struct {
		name  string
		token string
		want  string // part of the diagnostics
	}{
		{"missing token", "", "missing"},
		{"garbage", "not-a-jwt", "malformed"},
		{"alg none", b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".", "not signed with EdDSA"},
		{"HS256 signed with the public key", hs256WithPublicKey, "not signed with EdDSA"},
		{"ES256 instead of EdDSA", sign(t, jose.ES256, ecKey, a.kid, goodClaims(now)), "not signed with EdDSA"},
		{"unknown kid", sign(t, jose.EdDSA, key, "someone-else", goodClaims(now)), "unknown key"},
		{"missing kid", sign(t, jose.EdDSA, key, "", goodClaims(now)), "unknown key"},
		{"signature by another key under our kid", parts[0] + "." + parts[1] + "." + otherParts[2], "signature is invalid"},
		{"payload swapped under our signature", parts[0] + "." + b64(wrongIss) + "." + parts[2], "signature is invalid"},
		{"expired", sign(t, jose.EdDSA, key, a.kid, expired), "expired"},
		{"issued in the future", sign(t, jose.EdDSA, key, a.kid, future), "not valid yet"},
		{"wrong issuer", sign(t, jose.EdDSA, key, a.kid, wrongIss), "another server"},
		{"wrong audience", func() string { tok, _ := otherAud.IssueAdmin(time.Hour); return tok }(), "unknown key"},
		{"lifetime over one hour", sign(t, jose.EdDSA, key, a.kid, tooLong), "longer than"},
		{"no exp", sign(t, jose.EdDSA, key, a.kid, noExp), "lacks exp"},
		{"no kind", sign(t, jose.EdDSA, key, a.kid, noKind), "lacks a subject or kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Verify(context.Background(), tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", p)
			}
			if !fhir.IsKind(err, fhir.EUnauthorized) {
				t.Errorf("kind = %s, want %s", fhir.KindOf(err), fhir.EUnauthorized)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestWrongAudienceWithSameKey(t *testing.T) {
	a, key := newAuthority(t, base)
	c := goodClaims(time.Now())
	c.Audience = jwt.Audience{"http://other.example/fhir"}
	_, err := a.Verify(context.Background(), sign(t, jose.EdDSA, key, a.kid, c))
	if err == nil || !strings.Contains(err.Error(), "meant for another server") {
		t.Fatalf("err = %v, want a wrong-audience refusal", err)
	}
}

func TestCachedTokenStillExpires(t *testing.T) {
	a, _ := newAuthority(t, base)
	now := time.Now()
	a.SetClock(func() time.Time { return now })
	tok, err := a.IssueAdmin(5 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.now = func() time.Time { return now.Add(5*time.Minute + Leeway + time.Second) }
	a.mu.Unlock()
	if _, err := a.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("cached token after expiry: err = %v, want expired", err)
	}
}

func TestContextCarriesPrincipal(t *testing.T) {
	ctx := context.Background()
	if _, ok := FromContext(ctx); ok {
		t.Fatal("empty context has a principal")
	}
	p := &Principal{Subject: "s", Kind: KindSystem}
	got, ok := FromContext(WithPrincipal(ctx, p))
	if !ok || got != p {
		t.Fatalf("FromContext = %v, %v; want %v", got, ok, p)
	}
}

func BenchmarkVerify(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a, _ := New(key, base)
	tok, _ := a.IssueAdmin(time.Hour)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.verify(tok, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
