package smart

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fakeProvider is an OpenID Connect provider on loopback: it answers the
// token request for a code with the id_token the test prepared for it.
type fakeProvider struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	mu    sync.Mutex
	codes map[string]map[string]any
}

func newFakeProvider(t *testing.T) *fakeProvider {
	fp := &fakeProvider{codes: map[string]map[string]any{}}
	fp.key, _ = rsa.GenerateKey(rand.Reader, 2048)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": fp.srv.URL, "authorization_endpoint": fp.srv.URL + "/authorize",
			"token_endpoint": fp.srv.URL + "/token", "jwks_uri": fp.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &fp.key.PublicKey, KeyID: "idp-1", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		r.ParseForm()
		fp.mu.Lock()
		claims := fp.codes[r.PostForm.Get("code")]
		delete(fp.codes, r.PostForm.Get("code"))
		fp.mu.Unlock()
		if !ok || id != "sharedcare" || secret != "s3cret" || claims == nil || r.PostForm.Get("code_verifier") == "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: fp.key, KeyID: "idp-1"}}, nil)
		tok, _ := jwt.Signed(s).Claims(claims).Serialize()
		json.NewEncoder(w).Encode(map[string]string{"id_token": tok, "access_token": "x", "token_type": "Bearer"})
	})
	fp.srv = httptest.NewServer(mux)
	t.Cleanup(fp.srv.Close)
	return fp
}

func TestOpenIDConnectLogin(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		fp := newFakeProvider(t)
		if err := f.srv.SetOIDC(ctx, &OIDCProvider{Issuer: fp.srv.URL, ClientID: "sharedcare", ClientSecret: "s3cret", Name: "NHS login"}); err != nil {
			t.Fatal(err)
		}
		// start runs an app's authorisation request up to the provider and
		// returns the provider's state and nonce, and the app's verifier.
		start := func(t *testing.T) (state, nonce, verifier string) {
			vb := make([]byte, 32)
			rand.Read(vb)
			verifier = base64.RawURLEncoding.EncodeToString(vb)
			sum := sha256.Sum256([]byte(verifier))
			page, err := f.srv.Authorize(ctx, url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect},
				"scope": {"user/*.rs online_access"}, "state": {"s"}, "aud": {base}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
				"code_challenge_method": {"S256"}})
			if err != nil || page.External != "NHS login" {
				t.Fatalf("authorize: %+v, %v; want the provider offered", page, err)
			}
			to, err := f.srv.StartOIDC(ctx, page.Request)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(to)
			if u.Host != mustURL(fp.srv.URL).Host || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("redirect_uri") != f.srv.OIDCCallbackURL() {
				t.Fatalf("redirect to the provider: %s", to)
			}
			return u.Query().Get("state"), u.Query().Get("nonce"), verifier
		}
		claims := func(nonce string, change func(map[string]any)) map[string]any {
			now := time.Now()
			c := map[string]any{"iss": fp.srv.URL, "aud": "sharedcare", "sub": "idp-42", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
				"nonce": nonce, "preferred_username": "jsmith", "ods": "rxx", "role": "nurse"}
			if change != nil {
				change(c)
			}
			return c
		}
		finish := func(t *testing.T, state string, c map[string]any) url.Values {
			code := randomToken(12)
			fp.mu.Lock()
			fp.codes[code] = c
			fp.mu.Unlock()
			to, err := f.srv.FinishOIDC(ctx, url.Values{"code": {code}, "state": {state}})
			if err != nil {
				t.Fatalf("finish: %v", err)
			}
			u, _ := url.Parse(to)
			return u.Query()
		}

		t.Run("the provider's user, organisation and role make the session, without a refresh token", func(t *testing.T) {
			state, nonce, verifier := start(t)
			back := finish(t, state, claims(nonce, nil))
			if back.Get("code") == "" {
				t.Fatalf("back at the app without a code: %v", back)
			}
			tr, oerr := f.srv.Token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")},
				"redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}})
			if oerr != nil {
				t.Fatal(oerr)
			}
			if tr.RefreshToken != "" || tr.Scope != "user/*.rs" {
				t.Errorf("token response %+v: want no refresh token and no online_access", tr)
			}
			p, err := f.srv.Verify(ctx, tr.AccessToken)
			if err != nil || p.Subject != "oidc:jsmith" || p.Organisation != "RXX" || p.OrganisationType != "acute-trust" || p.Role != "nurse" {
				t.Errorf("principal %+v, %v: want oidc:jsmith, nurse at RXX", p, err)
			}
		})
		t.Run("the state works once", func(t *testing.T) {
			state, nonce, _ := start(t)
			finish(t, state, claims(nonce, nil))
			if _, err := f.srv.FinishOIDC(ctx, url.Values{"code": {"x"}, "state": {state}}); err == nil {
				t.Error("a replayed state was accepted")
			}
		})
		for _, c := range []struct {
			name   string
			change func(map[string]any)
		}{
			{"another login's nonce", func(c map[string]any) { c["nonce"] = "other" }},
			{"an id_token for another client", func(c map[string]any) { c["aud"] = "someone-else" }},
			{"another issuer", func(c map[string]any) { c["iss"] = "https://evil.example" }},
			{"an expired id_token", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }},
			{"a patient role", func(c map[string]any) { c["role"] = "patient" }},
			{"an unknown role", func(c map[string]any) { c["role"] = "surgeon-general" }},
			{"an unregistered organisation", func(c map[string]any) { c["ods"] = "ZZZ99" }},
			{"no organisation claim", func(c map[string]any) { delete(c, "ods") }},
		} {
			t.Run(c.name+" is refused", func(t *testing.T) {
				state, nonce, _ := start(t)
				back := finish(t, state, claims(nonce, c.change))
				if back.Get("code") != "" || back.Get("error") != "access_denied" {
					t.Errorf("back at the app with %v, want error=access_denied and no code", back)
				}
			})
		}
	})
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }
