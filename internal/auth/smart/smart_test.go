package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// Server-level rules that need a clock or concurrency, on both stores.

const (
	base     = "http://127.0.0.1:8080/fhir"
	password = "correct horse battery staple"
	redirect = "https://app.example/cb"
)

type fixture struct {
	st    store.Store
	srv   *Server
	clock *atomic.Int64 // Unix nanoseconds
	key   *ecdsa.PrivateKey
}

func (f *fixture) now() time.Time              { return time.Unix(0, f.clock.Load()) }
func (f *fixture) advance(d time.Duration)     { f.clock.Add(int64(d)) }
func (f *fixture) server(t *testing.T) *Server { return newServer(t, f.st, f.clock) }

func newServer(t *testing.T, st store.Store, clock *atomic.Int64) *Server {
	t.Helper()
	a, err := auth.Load(context.Background(), st, base)
	if err != nil {
		t.Fatal(err)
	}
	a.SetClock(func() time.Time { return time.Unix(0, clock.Load()) })
	srv, err := New(a, st, Config{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func setup(t *testing.T, st store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{st: st, clock: new(atomic.Int64)}
	f.clock.Store(time.Now().UnixNano())
	f.srv = f.server(t)
	dir := directory.New(st)
	if err := dir.CreateOrg(ctx, directory.Organisation{ODS: "RXX", Type: "acute-trust"}); err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword(password)
	if err := dir.CreateUser(ctx, &directory.User{Name: "alice", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "nurse"}}}); err != nil {
		t.Fatal(err)
	}
	if err := dir.CreateClient(ctx, &directory.Client{ID: "app", Type: directory.Public, RedirectURIs: []string{redirect},
		Scopes: []string{"user/*.rs", "online_access"}}); err != nil {
		t.Fatal(err)
	}
	f.key, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: "k1"}}})
	if err := dir.CreateClient(ctx, &directory.Client{ID: "feed", Type: directory.System, Org: "RXX", JWKS: jwks, Scopes: []string{"system/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func forEachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, setup(t, b.Open(t))) })
	}
}

// code runs a login and returns a code and its verifier.
func (f *fixture) code(t *testing.T, scope string) (code, verifier string) {
	t.Helper()
	ctx := context.Background()
	vb := make([]byte, 32)
	rand.Read(vb)
	verifier = base64.RawURLEncoding.EncodeToString(vb)
	sum := sha256.Sum256([]byte(verifier))
	page, err := f.srv.Authorize(ctx, url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect},
		"scope": {scope}, "state": {"s"}, "aud": {base}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.srv.Login(ctx, LoginForm{Request: page.Request, Username: "alice", Password: password})
	if err != nil || res.Redirect == "" {
		t.Fatalf("login: %+v, %v", res, err)
	}
	u, _ := url.Parse(res.Redirect)
	return u.Query().Get("code"), verifier
}

func TestLockoutEndsAfterItsTime(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for i := range 5 {
			if ok, _, err := f.srv.checkCredentials(ctx, "alice", "wrong password!", ""); ok || err != nil {
				t.Fatalf("failure %d: ok %v err %v", i, ok, err)
			}
		}
		if ok, _, _ := f.srv.checkCredentials(ctx, "alice", password, ""); ok {
			t.Error("the right password during the lock was accepted")
		}
		f.advance(14 * time.Minute)
		if ok, _, _ := f.srv.checkCredentials(ctx, "alice", password, ""); ok {
			t.Error("the right password 14 minutes into a 15-minute lock was accepted")
		}
		f.advance(2 * time.Minute)
		if ok, _, _ := f.srv.checkCredentials(ctx, "alice", password, ""); !ok {
			t.Error("the right password after the lock was refused")
		}
		// A success resets the count: four more failures do not lock.
		for range 4 {
			f.srv.checkCredentials(ctx, "alice", "wrong password!", "")
		}
		if ok, _, _ := f.srv.checkCredentials(ctx, "alice", password, ""); !ok {
			t.Error("four failures after a success locked the account")
		}
	})
}

func TestConcurrentFailuresAllCount(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { f.srv.checkCredentials(ctx, "alice", "wrong password!", "") })
		}
		wg.Wait()
		if ok, _, _ := f.srv.checkCredentials(ctx, "alice", password, ""); ok {
			t.Error("five simultaneous failures did not lock the account: a count was lost")
		}
	})
}

func TestCodeIsRedeemedOnceUnderRace(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		code, verifier := f.code(t, "user/*.rs")
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := f.srv.Token(context.Background(), url.Values{"grant_type": {"authorization_code"}, "code": {code},
					"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}}); err == nil {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d of 8 simultaneous redemptions got a token, want exactly 1", wins.Load())
		}
	})
}

func TestCodeExpires(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		code, verifier := f.code(t, "user/*.rs")
		f.advance(2 * time.Minute)
		_, err := f.srv.Token(context.Background(), url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}})
		if err == nil || err.Code != "invalid_grant" {
			t.Errorf("a code two minutes old: %v, want invalid_grant", err)
		}
	})
}

func TestSessionLimitsAndRoleRemoval(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		code, verifier := f.code(t, "user/*.rs online_access")
		tr, err := f.srv.Token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}})
		if err != nil {
			t.Fatal(err)
		}
		if tr.ExpiresIn != 15*60 {
			t.Errorf("user token lifetime %d s, want the 15-minute default", tr.ExpiresIn)
		}
		refresh := func(rt string) (*TokenResponse, *Error) {
			return f.srv.Token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}})
		}
		f.advance(20 * time.Minute)
		if _, err := f.srv.Verify(ctx, tr.AccessToken); !fhir.IsKind(err, fhir.EUnauthorized) {
			t.Errorf("access token after 20 minutes: %v, want expired", err)
		}
		next, oerr := refresh(tr.RefreshToken)
		if oerr != nil {
			t.Fatalf("refresh within the online session: %v", oerr)
		}
		// The role is taken away: the next refresh fails and ends the session.
		if _, err := directory.New(f.st).RemoveRole(ctx, "alice", directory.Assignment{Org: "RXX", Role: "nurse"}); err != nil {
			t.Fatal(err)
		}
		if _, oerr := refresh(next.RefreshToken); oerr == nil || oerr.Code != "invalid_grant" {
			t.Errorf("refresh after the role was removed: %v, want invalid_grant", oerr)
		}
		if _, err := f.srv.Verify(ctx, next.AccessToken); !fhir.IsKind(err, fhir.EUnauthorized) {
			t.Errorf("access token of the ended session: %v, want refused", err)
		}
		if _, err := directory.New(f.st).AddRole(ctx, "alice", directory.Assignment{Org: "RXX", Role: "nurse"}); err != nil {
			t.Fatal(err)
		}
		// An online session ends after 12 hours however often it refreshes.
		code, verifier = f.code(t, "user/*.rs online_access")
		tr, _ = f.srv.Token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}})
		rt := tr.RefreshToken
		for range 11 {
			f.advance(time.Hour)
			n, oerr := refresh(rt)
			if oerr != nil {
				t.Fatalf("refresh within 12 hours: %v", oerr)
			}
			rt = n.RefreshToken
		}
		f.advance(90 * time.Minute)
		if _, oerr := refresh(rt); oerr == nil {
			t.Error("refresh 12.5 hours into an online session succeeded")
		}
	})
}

func TestRevocationReachesAnotherProcess(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		other := f.server(t) // another node sharing the store
		code, verifier := f.code(t, "user/*.rs")
		tr, err := f.srv.Token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Verify(ctx, tr.AccessToken); err != nil {
			t.Fatalf("the other node refuses a good token: %v", err)
		}
		if oerr := f.srv.Revoke(ctx, nil, url.Values{"token": {tr.AccessToken}, "client_id": {"app"}}); oerr != nil {
			t.Fatal(oerr)
		}
		if _, err := f.srv.Verify(ctx, tr.AccessToken); err == nil {
			t.Error("the revoking node still accepts the token")
		}
		time.Sleep(revocationRefresh + 100*time.Millisecond)
		if _, err := other.Verify(ctx, tr.AccessToken); err == nil {
			t.Errorf("the other node still accepts the token %s after the revocation", revocationRefresh)
		}
	})
}

func TestJTIIsUsedOnceUnderRace(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: f.key, KeyID: "k1"}}, nil)
		now := f.now()
		a, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: "feed", Subject: "feed", Audience: jwt.Audience{f.srv.TokenURL()}, ID: "same-jti",
			Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := f.srv.Token(context.Background(), url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
					"client_assertion_type": {AssertionType}, "client_assertion": {a}}); err == nil {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d of 8 simultaneous uses of one assertion got a token, want exactly 1", wins.Load())
		}
	})
}
