package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/auth/smart"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// The SMART authorisation server over HTTP, on both stores: discovery, the
// no-JavaScript login with PKCE, role choice, TOTP, refresh rotation,
// Backend Services with registered keys and a JWKS URL, introspection,
// revocation, lifetimes, and the token attacks of issue 6.

const testPassword = "correct horse battery staple"

// smartNode is a node with a populated directory.
type smartNode struct {
	*node
	redirect string // the public app's registered redirect URI
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	totp     string // bob's TOTP secret
	client   *http.Client
}

// startAccessSMART runs the API as serve will with issue 6 on: the access
// decider over the node's policy, and the SMART server built from the
// authority loaded from the store.
func startAccessSMART(t *testing.T, st store.Store) *node {
	t.Helper()
	ln, cfg := loopbackConfig(t)
	a, err := auth.Load(context.Background(), st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
	h := api.NewWithAccess(service{eng, st}, a, access.New(st, pol), cfg, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	tok, err := a.IssueAdmin(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &node{url: srv.URL, base: srv.URL + "/fhir", token: tok, st: st, auth: a, handler: h}
}

func startSMART(t *testing.T, st store.Store) *smartNode {
	t.Helper()
	n := startAccessSMART(t, st)
	ctx := context.Background()
	dir := directory.New(st)
	for _, o := range []directory.Organisation{
		{ODS: "RXX", Name: "Riverside Hospitals NHS Trust", Type: "acute-trust"},
		{ODS: "A81001", Name: "Elm Street Surgery", Type: "gp-practice"},
	} {
		if err := dir.CreateOrg(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	hash, err := auth.HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	totp, _ := auth.NewTOTPSecret()
	for _, u := range []*directory.User{
		{Name: "alice", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "nurse"}, {Org: "A81001", Role: "clinician", FHIRUser: "Practitioner/alice"}}},
		{Name: "bob", PasswordHash: hash, TOTPSecret: totp, Roles: []directory.Assignment{{Org: "RXX", Role: "paramedic"}}},
		{Name: "pat", PasswordHash: hash, Roles: []directory.Assignment{{Role: "patient", Patient: "p1", FHIRUser: "Patient/p1"}}},
		{Name: "dave", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "nurse"}}},
		{Name: "rita", PasswordHash: hash, Roles: []directory.Assignment{{Role: "proxy", Patient: "p1", FHIRUser: "RelatedPerson/r1"}}},
		{Name: "carol", PasswordHash: hash, Roles: []directory.Assignment{{Org: "RXX", Role: "admin-clerk"}}},
	} {
		if err := dir.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	sn := &smartNode{node: n, redirect: "http://127.0.0.1:9/callback", totp: totp,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := dir.CreateClient(ctx, &directory.Client{ID: "app", Type: directory.Public, RedirectURIs: []string{sn.redirect},
		Scopes: []string{"user/*.rs", "user/Observation.cruds", "patient/*.rs", "offline_access", "online_access", "launch/patient"}}); err != nil {
		t.Fatal(err)
	}
	if err := dir.CreateClient(ctx, &directory.Client{ID: "other-app", Type: directory.Public, RedirectURIs: []string{"https://other.example/cb"},
		Scopes: []string{"user/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	sn.rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &sn.rsaKey.PublicKey, KeyID: "rsa-1", Algorithm: "RS384", Use: "sig"}}}
	jwks, _ := json.Marshal(set)
	if err := dir.CreateClient(ctx, &directory.Client{ID: "web", Type: directory.Confidential, RedirectURIs: []string{sn.redirect}, JWKS: jwks,
		Scopes: []string{"user/*.rs", "online_access"}}); err != nil {
		t.Fatal(err)
	}
	if err := dir.CreateClient(ctx, &directory.Client{ID: "feed", Type: directory.System, Org: "RXX", JWKS: jwks,
		Scopes: []string{"system/*.rs", "system/Observation.c"}}); err != nil {
		t.Fatal(err)
	}
	// A client publishing its keys at a JWKS URL, on loopback.
	sn.ecKey, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &sn.ecKey.PublicKey, KeyID: "ec-1", Algorithm: "ES384", Use: "sig"}}})
	}))
	t.Cleanup(keySrv.Close)
	if err := dir.CreateClient(ctx, &directory.Client{ID: "feed-es", Type: directory.System, Org: "A81001", JWKSURL: keySrv.URL + "/jwks.json",
		Scopes: []string{"system/Patient.rs"}}); err != nil {
		t.Fatal(err)
	}
	return sn
}

// post sends a form and returns the response and body.
func (sn *smartNode) post(t *testing.T, path string, form url.Values, bearer string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, sn.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return sn.send(t, req)
}

func (sn *smartNode) get(t *testing.T, path, bearer string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, sn.url+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return sn.send(t, req)
}

func (sn *smartNode) send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := sn.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// fhirStatus is the status of an authenticated FHIR request with token: a
// missing resource's 404 once authenticated, 401 when the token is refused.
func (sn *smartNode) fhirStatus(t *testing.T, token string) int {
	t.Helper()
	resp, _ := sn.get(t, "/fhir/Patient/does-not-exist", token)
	return resp.StatusCode
}

var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func (sn *smartNode) authorizeQuery(challenge, scope string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {sn.redirect}, "scope": {scope},
		"state": {"st-123"}, "aud": {sn.base}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
}

// startLogin opens the login form and returns its request id.
func (sn *smartNode) startLogin(t *testing.T, challenge, scope string) string {
	t.Helper()
	resp, body := sn.get(t, "/auth/authorize?"+sn.authorizeQuery(challenge, scope).Encode(), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: status %d: %s", resp.StatusCode, body)
	}
	m := requestField.FindSubmatch(body)
	if m == nil {
		t.Fatalf("authorize: no request field in the form: %s", body)
	}
	return string(m[1])
}

// codeFrom checks a redirect back to the app and returns its code.
func (sn *smartNode) codeFrom(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303 back to the app: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), sn.redirect) {
		t.Fatalf("login: redirected to %q, want the app's redirect URI", resp.Header.Get("Location"))
	}
	if loc.Query().Get("state") != "st-123" || loc.Query().Get("code") == "" {
		t.Fatalf("login: redirect %q lacks the state or a code", loc)
	}
	return loc.Query().Get("code")
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	Patient      string `json:"patient"`
	Error        string `json:"error"`
}

func (sn *smartNode) token(t *testing.T, form url.Values) (int, tokenResponse) {
	t.Helper()
	resp, body := sn.post(t, "/auth/token", form, "")
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token: not JSON (status %d): %s", resp.StatusCode, body)
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, tr
}

// login runs the whole authorisation code flow for user in role.
func (sn *smartNode) login(t *testing.T, user, role, scope string) tokenResponse {
	t.Helper()
	verifier, challenge := pkce()
	req := sn.startLogin(t, challenge, scope)
	resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {user}, "password": {testPassword}, "role": {role}}, "")
	code := sn.codeFrom(t, resp, body)
	status, tr := sn.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect},
		"code_verifier": {verifier}, "client_id": {"app"}})
	if status != http.StatusOK {
		t.Fatalf("token: status %d, error %q", status, tr.Error)
	}
	return tr
}

func (sn *smartNode) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	resp, body := sn.post(t, "/auth/introspect", url.Values{"token": {token}}, sn.node.token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: status %d: %s", resp.StatusCode, body)
	}
	var out map[string]any
	json.Unmarshal(body, &out)
	return out
}

// assertion signs a client assertion; change edits the claims first.
func assertion(t *testing.T, alg jose.SignatureAlgorithm, key any, kid, client, aud string, change func(*jwt.Claims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.Claims{Issuer: client, Subject: client, Audience: jwt.Audience{aud}, ID: randomID(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute))}
	if change != nil {
		change(&c)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func backendForm(a, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
}

func TestSMART(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			sn := startSMART(t, b.Open(t))
			t.Run("discovery", sn.testDiscovery)
			t.Run("login", sn.testLogin)
			t.Run("login failures", sn.testLoginFailures)
			t.Run("authorize refusals", sn.testAuthorizeRefusals)
			t.Run("code exchange", sn.testCodeExchange)
			t.Run("refresh", sn.testRefresh)
			t.Run("backend services", sn.testBackendServices)
			t.Run("assertion attacks", sn.testAssertionAttacks)
			t.Run("access token attacks", sn.testAccessTokenAttacks)
			t.Run("introspection and revocation", sn.testIntrospectRevoke)
			t.Run("bad input is a 4xx", sn.testBadInput)
			t.Run("external provider link", sn.testOIDCLink)
		})
	}
}

func (sn *smartNode) testDiscovery(t *testing.T) {
	for _, path := range []string{"/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"} {
		resp, body := sn.get(t, path, "") // discovery is public
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, body)
		}
		var d map[string]any
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"authorization_endpoint": sn.url + "/auth/authorize",
			"token_endpoint":         sn.url + "/auth/token",
			"introspection_endpoint": sn.url + "/auth/introspect",
			"revocation_endpoint":    sn.url + "/auth/revoke",
			"jwks_uri":               sn.url + "/auth/jwks",
		} {
			if d[k] != want {
				t.Errorf("%s %s = %v, want %s", path, k, d[k], want)
			}
		}
		for k, want := range map[string]string{
			"code_challenge_methods_supported":                 "S256",
			"token_endpoint_auth_methods_supported":            "private_key_jwt",
			"token_endpoint_auth_signing_alg_values_supported": "ES384",
			"grant_types_supported":                            "client_credentials",
			"capabilities":                                     "permission-v2",
		} {
			if list, _ := d[k].([]any); !containsAny(list, want) {
				t.Errorf("%s %s = %v, want it to list %s", path, k, d[k], want)
			}
		}
		if list, _ := d["code_challenge_methods_supported"].([]any); containsAny(list, "plain") {
			t.Errorf("discovery offers PKCE plain")
		}
	}
	resp, body := sn.get(t, "/auth/jwks", "")
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &set) != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
		t.Errorf("jwks: status %d, body %s; want one public key", resp.StatusCode, body)
	}
}

func containsAny(list []any, want string) bool {
	for _, v := range list {
		if v == want {
			return true
		}
	}
	return false
}

func (sn *smartNode) testLogin(t *testing.T) {
	t.Run("the login page is a plain form without scripts", func(t *testing.T) {
		_, challenge := pkce()
		resp, body := sn.get(t, "/auth/authorize?"+sn.authorizeQuery(challenge, "user/*.rs").Encode(), "")
		page := string(body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<form method="post" action="/auth/login">`) ||
			!strings.Contains(page, `name="password"`) || strings.Contains(strings.ToLower(page), "<script") {
			t.Errorf("login page: status %d, want a script-free form posting to /auth/login: %s", resp.StatusCode, page)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("login page CSP = %q, want no scripts and no framing", csp)
		}
	})
	t.Run("a user with one role logs in in one post and gets a user token for that role", func(t *testing.T) {
		tr := sn.login(t, "carol", "", "user/*.rs launch/patient")
		if tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 || tr.ExpiresIn > 3600 || tr.RefreshToken != "" {
			t.Errorf("token response %+v: want Bearer, at most an hour, no refresh token without offline/online_access", tr)
		}
		in := sn.introspect(t, tr.AccessToken)
		for k, want := range map[string]any{"active": true, "sub": "carol", "kind": "user", "role": "admin-clerk", "organization": "RXX",
			"organization_type": "acute-trust", "client_id": "app", "scope": "user/*.rs"} {
			if in[k] != want {
				t.Errorf("introspection %s = %v, want %v", k, in[k], want)
			}
		}
		if got := sn.fhirStatus(t, tr.AccessToken); got == http.StatusUnauthorized {
			t.Errorf("FHIR request with the user's token: 401")
		}
	})
	t.Run("a user with two roles chooses one, and the session holds only that one", func(t *testing.T) {
		verifier, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs user/Observation.cruds")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"alice"}, "password": {testPassword}}, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `value="A81001:clinician"`) || !strings.Contains(string(body), `value="RXX:nurse"`) {
			t.Fatalf("login with two roles: status %d, want the role choice: %s", resp.StatusCode, body)
		}
		// The choice alone (no password again) completes this login.
		resp, body = sn.post(t, "/auth/login", url.Values{"request": {req}, "role": {"A81001:clinician"}}, "")
		code := sn.codeFrom(t, resp, body)
		_, tr := sn.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect},
			"code_verifier": {verifier}, "client_id": {"app"}})
		in := sn.introspect(t, tr.AccessToken)
		if in["role"] != "clinician" || in["organization"] != "A81001" || in["organization_type"] != "gp-practice" || in["fhirUser"] != "Practitioner/alice" {
			t.Errorf("introspection %v: want clinician at A81001 (gp-practice) as Practitioner/alice", in)
		}
		if tr.Scope != "user/*.rs user/Observation.cruds" {
			t.Errorf("scope = %q, want what was asked within the client's maximum", tr.Scope)
		}
	})
	t.Run("a role the user does not hold is never granted", func(t *testing.T) {
		_, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"carol"}, "password": {testPassword}, "role": {"A81001:clinician"}}, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `value="RXX:admin-clerk"`) {
			t.Errorf("login asking for a role not held: status %d, want the choice of held roles only: %s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "A81001") {
			t.Errorf("the choice offers a role the user does not hold")
		}
	})
	t.Run("a patient gets patient scopes only and the patient context", func(t *testing.T) {
		tr := sn.login(t, "pat", "", "patient/*.rs user/*.rs launch/patient")
		if tr.Patient != "p1" || tr.Scope != "patient/*.rs launch/patient" {
			t.Errorf("patient token: patient %q scope %q, want p1 and patient/*.rs launch/patient only", tr.Patient, tr.Scope)
		}
		if in := sn.introspect(t, tr.AccessToken); in["kind"] != "patient" || in["patient"] != "p1" || in["fhirUser"] != "Patient/p1" ||
			in["sub"] != "Patient/p1" || in["username"] != "pat" || in["role"] != "patient" {
			t.Errorf("introspection %v: want a patient token of pat as Patient/p1", in)
		}
		// The access model reads the token: pat sees her own record and
		// nobody else's (a patient token reaching another patient).
		for _, id := range []string{"p1", "p2"} {
			req, _ := http.NewRequest(http.MethodPut, sn.base+"/Patient/"+id, strings.NewReader(`{"resourceType":"Patient","id":"`+id+`","name":[{"family":"Test"}]}`))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("Authorization", "Bearer "+sn.node.token)
			if resp, body := sn.send(t, req); resp.StatusCode >= 300 {
				t.Fatalf("PUT Patient/%s: %d %s", id, resp.StatusCode, body)
			}
		}
		if resp, body := sn.get(t, "/fhir/Patient/p1", tr.AccessToken); resp.StatusCode != http.StatusOK {
			t.Errorf("pat reading her own Patient: status %d, want 200: %s", resp.StatusCode, body)
		}
		if resp, _ := sn.get(t, "/fhir/Patient/p2", tr.AccessToken); resp.StatusCode != http.StatusNotFound {
			t.Errorf("pat reading another patient: status %d, want 404 (withheld looks missing)", resp.StatusCode)
		}
	})
	t.Run("a proxy is known by their RelatedPerson and gets the patient's context", func(t *testing.T) {
		tr := sn.login(t, "rita", "", "patient/*.rs")
		if tr.Patient != "p1" {
			t.Errorf("proxy token: patient %q, want p1", tr.Patient)
		}
		if in := sn.introspect(t, tr.AccessToken); in["kind"] != "patient" || in["sub"] != "RelatedPerson/r1" || in["role"] != "proxy" || in["username"] != "rita" {
			t.Errorf("introspection %v: want a proxy token of rita as RelatedPerson/r1 about p1", in)
		}
	})
	t.Run("TOTP: the code is required, works once, and is not reusable", func(t *testing.T) {
		_, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs")
		resp, _ := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"bob"}, "password": {testPassword}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("login without the TOTP code: status %d, want 401", resp.StatusCode)
		}
		code, _ := auth.TOTPCode(sn.totp, time.Now())
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"bob"}, "password": {testPassword}, "totp": {code}}, "")
		sn.codeFrom(t, resp, body)
		req = sn.startLogin(t, challenge, "user/*.rs")
		resp, _ = sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"bob"}, "password": {testPassword}, "totp": {code}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the same TOTP code a second time: status %d, want 401", resp.StatusCode)
		}
	})
}

func (sn *smartNode) testLoginFailures(t *testing.T) {
	_, challenge := pkce()
	req := sn.startLogin(t, challenge, "user/*.rs")
	var pages []string
	for _, user := range []string{"alice", "nobody"} {
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {user}, "password": {"wrong password!!"}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong password for %s: status %d, want 401", user, resp.StatusCode)
		}
		pages = append(pages, strings.ReplaceAll(string(body), user, ""))
	}
	if pages[0] != pages[1] {
		t.Errorf("a wrong password and an unknown user give different pages: the page tells which accounts exist")
	}
	// Five failures in a row lock the account: the right password is then
	// refused too, with the same page.
	for range 4 {
		sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"carol"}, "password": {"wrong password!!"}}, "")
	}
	resp, _ := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"carol"}, "password": {"wrong password!!"}}, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("fifth failure: status %d", resp.StatusCode)
	}
	resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"carol"}, "password": {testPassword}}, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("right password on a locked account: status %d, want 401: %s", resp.StatusCode, body)
	}
	for _, bad := range []struct {
		name string
		form url.Values
	}{
		{"an unknown login request", url.Values{"request": {"nope"}, "username": {"alice"}, "password": {testPassword}}},
		{"no login request", url.Values{"username": {"alice"}, "password": {testPassword}}},
		{"a repeated field", url.Values{"request": {req, req}, "username": {"alice"}, "password": {testPassword}}},
	} {
		resp, body := sn.post(t, "/auth/login", bad.form, "")
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%s: status %d location %q, want 400 and no redirect: %s", bad.name, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
}

func (sn *smartNode) testAuthorizeRefusals(t *testing.T) {
	_, challenge := pkce()
	for _, c := range []struct {
		name     string
		change   func(url.Values)
		redirect bool   // the error goes back to the app
		code     string // its error code
	}{
		{"an unknown client is shown an error, never redirected", func(q url.Values) { q.Set("client_id", "nobody") }, false, ""},
		{"an unregistered redirect_uri is shown an error, never redirected", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, false, ""},
		{"a redirect_uri of another client is refused", func(q url.Values) { q.Set("redirect_uri", "https://other.example/cb") }, false, ""},
		{"a system client cannot log a user in", func(q url.Values) { q.Set("client_id", "feed") }, false, ""},
		{"the wrong aud is refused", func(q url.Values) { q.Set("aud", "https://other.example/fhir") }, true, "invalid_request"},
		{"PKCE is required", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, true, "invalid_request"},
		{"PKCE plain is refused", func(q url.Values) { q.Set("code_challenge_method", "plain") }, true, "invalid_request"},
		{"state is required", func(q url.Values) { q.Del("state") }, true, "invalid_request"},
		{"only the code response type", func(q url.Values) { q.Set("response_type", "token") }, true, "unsupported_response_type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := sn.authorizeQuery(challenge, "user/*.rs")
			c.change(q)
			resp, body := sn.get(t, "/auth/authorize?"+q.Encode(), "")
			loc := resp.Header.Get("Location")
			if c.redirect {
				u, _ := url.Parse(loc)
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, sn.redirect) || u.Query().Get("error") != c.code {
					t.Errorf("status %d location %q, want a redirect to the app with error=%s", resp.StatusCode, loc, c.code)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || loc != "" || strings.Contains(string(body), `name="password"`) {
				t.Errorf("status %d location %q, want 400, no redirect and no login form", resp.StatusCode, loc)
			}
		})
	}
	t.Run("scopes the app may not have are dropped, and none left is invalid_scope", func(t *testing.T) {
		verifier, challenge := pkce()
		req := sn.startLogin(t, challenge, "system/*.cruds user/Patient.cruds")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"carol"}, "password": {testPassword}}, "")
		if resp.StatusCode == http.StatusUnauthorized {
			// carol may still be locked by the failure test: use pat.
			req = sn.startLogin(t, challenge, "system/*.cruds patient/Patient.cruds")
			resp, body = sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"pat"}, "password": {testPassword}}, "")
		}
		code := sn.codeFrom(t, resp, body)
		_, tr := sn.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect},
			"code_verifier": {verifier}, "client_id": {"app"}})
		if strings.Contains(tr.Scope, "system/") || strings.Contains(tr.Scope, "c") && strings.Contains(tr.Scope, "Patient.c") {
			t.Errorf("granted %q: want no system scope and no create beyond the client's maximum", tr.Scope)
		}
		req = sn.startLogin(t, challenge, "system/*.cruds")
		resp, _ = sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"pat"}, "password": {testPassword}}, "")
		if u, _ := url.Parse(resp.Header.Get("Location")); u == nil || u.Query().Get("error") != "invalid_scope" {
			t.Errorf("login with only ungrantable scopes: location %q, want error=invalid_scope", resp.Header.Get("Location"))
		}
	})
}

func (sn *smartNode) testCodeExchange(t *testing.T) {
	newCode := func(t *testing.T) (verifier, code string) {
		verifier, challenge := pkce()
		req := sn.startLogin(t, challenge, "patient/*.rs online_access")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"pat"}, "password": {testPassword}}, "")
		return verifier, sn.codeFrom(t, resp, body)
	}
	exchange := func(code, verifier, redirect, client string) (int, tokenResponse) {
		return sn.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"code_verifier": {verifier}, "client_id": {client}})
	}
	t.Run("a wrong code_verifier is refused", func(t *testing.T) {
		_, code := newCode(t)
		other, _ := pkce()
		if status, tr := exchange(code, other, sn.redirect, "app"); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("status %d error %q, want 400 invalid_grant", status, tr.Error)
		}
	})
	t.Run("a code of another client is refused", func(t *testing.T) {
		verifier, code := newCode(t)
		if status, tr := exchange(code, verifier, "https://other.example/cb", "other-app"); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("status %d error %q, want 400 invalid_grant", status, tr.Error)
		}
	})
	t.Run("a different redirect_uri is refused", func(t *testing.T) {
		verifier, code := newCode(t)
		if status, tr := exchange(code, verifier, sn.redirect+"x", "app"); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("status %d error %q, want 400 invalid_grant", status, tr.Error)
		}
	})
	t.Run("a code works once; a replay is refused and ends the session it started", func(t *testing.T) {
		verifier, code := newCode(t)
		status, first := exchange(code, verifier, sn.redirect, "app")
		if status != http.StatusOK || first.RefreshToken == "" {
			t.Fatalf("first exchange: status %d %+v", status, first)
		}
		if status, tr := exchange(code, verifier, sn.redirect, "app"); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("replayed code: status %d error %q, want 400 invalid_grant", status, tr.Error)
		}
		if got := sn.fhirStatus(t, first.AccessToken); got != http.StatusUnauthorized {
			t.Errorf("the first exchange's token after a replay: status %d, want 401", got)
		}
	})
	t.Run("a confidential app authenticates with a client assertion, never its client_id alone", func(t *testing.T) {
		verifier, challenge := pkce()
		q := sn.authorizeQuery(challenge, "user/*.rs online_access")
		q.Set("client_id", "web")
		resp, body := sn.get(t, "/auth/authorize?"+q.Encode(), "")
		m := requestField.FindSubmatch(body)
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("authorize: %d %s", resp.StatusCode, body)
		}
		resp, body = sn.post(t, "/auth/login", url.Values{"request": {string(m[1])}, "username": {"dave"}, "password": {testPassword}}, "")
		code := sn.codeFrom(t, resp, body)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect}, "code_verifier": {verifier}, "client_id": {"web"}}
		if status, tr := sn.token(t, form); status != http.StatusUnauthorized || tr.Error != "invalid_client" {
			t.Errorf("confidential client with client_id alone: status %d error %q, want 401 invalid_client", status, tr.Error)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "web", sn.url+"/auth/token", nil))
		status, tr := sn.token(t, form)
		if status != http.StatusOK || tr.RefreshToken == "" {
			t.Fatalf("confidential client with an assertion: status %d %+v", status, tr)
		}
		rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {"web"}}
		if status, _ := sn.token(t, rf); status != http.StatusUnauthorized {
			t.Errorf("refresh by a confidential client without an assertion: status %d, want 401", status)
		}
		rf.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		rf.Set("client_assertion", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "web", sn.url+"/auth/token", nil))
		if status, tr := sn.token(t, rf); status != http.StatusOK || tr.AccessToken == "" {
			t.Errorf("refresh with an assertion: status %d %+v", status, tr)
		}
	})
	t.Run("the password grant is not offered", func(t *testing.T) {
		status, tr := sn.token(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}})
		if status != http.StatusBadRequest || tr.Error != "unsupported_grant_type" {
			t.Errorf("password grant: status %d error %q, want unsupported_grant_type", status, tr.Error)
		}
	})
	t.Run("token requests that are not forms are refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, sn.url+"/auth/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, body := sn.send(t, req)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_request") {
			t.Errorf("JSON token request: status %d %s, want 400 invalid_request", resp.StatusCode, body)
		}
	})
}

func (sn *smartNode) testRefresh(t *testing.T) {
	tr := sn.login(t, "pat", "", "patient/*.rs offline_access")
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	refresh := func(rt string) (int, tokenResponse) {
		return sn.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}})
	}
	if status, tr := sn.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {"other-app"}}); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("refresh by another client: status %d error %q, want invalid_grant", status, tr.Error)
	}
	status, next := refresh(tr.RefreshToken)
	if status != http.StatusOK || next.RefreshToken == "" || next.RefreshToken == tr.RefreshToken || next.Patient != "p1" {
		t.Fatalf("refresh: status %d %+v; want a new access and refresh token", status, next)
	}
	if got := sn.fhirStatus(t, next.AccessToken); got == http.StatusUnauthorized {
		t.Errorf("refreshed access token refused")
	}
	if status, narrowed := sn.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.RefreshToken}, "client_id": {"app"}, "scope": {"patient/*.cruds"}}); status != http.StatusBadRequest || narrowed.Error != "invalid_scope" {
		t.Errorf("refresh widening the scope: status %d error %q, want invalid_scope", status, narrowed.Error)
	}
	// The spent refresh token comes back: someone copied it. The session
	// ends for both holders.
	if status, tr := refresh(tr.RefreshToken); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("spent refresh token: status %d error %q, want invalid_grant", status, tr.Error)
	}
	if status, _ := refresh(next.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("the current refresh token after a reuse: status %d, want 400 (the session is over)", status)
	}
	if got := sn.fhirStatus(t, next.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("access token of the ended session: status %d, want 401 on the next request", got)
	}
}

func (sn *smartNode) testBackendServices(t *testing.T) {
	aud := sn.url + "/auth/token"
	t.Run("RS384 with a registered key", func(t *testing.T) {
		a := assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", aud, nil)
		status, tr := sn.token(t, backendForm(a, "system/Patient.rs system/Observation.cruds"))
		if status != http.StatusOK {
			t.Fatalf("status %d error %q", status, tr.Error)
		}
		if tr.ExpiresIn <= 0 || tr.ExpiresIn > 300 || tr.RefreshToken != "" {
			t.Errorf("system token: expires_in %d refresh %q, want at most 300 s and no refresh token", tr.ExpiresIn, tr.RefreshToken)
		}
		if tr.Scope != "system/Patient.rs system/Observation.crs" {
			t.Errorf("scope = %q, want the request cut to the client's maximum", tr.Scope)
		}
		in := sn.introspect(t, tr.AccessToken)
		if in["kind"] != "system" || in["organization"] != "RXX" || in["client_id"] != "feed" || in["role"] != "system" {
			t.Errorf("introspection %v: want a system token of feed for RXX", in)
		}
		if got := sn.fhirStatus(t, tr.AccessToken); got == http.StatusUnauthorized {
			t.Errorf("FHIR request with the system token: 401")
		}
	})
	t.Run("ES384 with keys from a JWKS URL", func(t *testing.T) {
		a := assertion(t, jose.ES384, sn.ecKey, "ec-1", "feed-es", aud, nil)
		status, tr := sn.token(t, backendForm(a, "system/Patient.rs"))
		if status != http.StatusOK || tr.Scope != "system/Patient.rs" {
			t.Fatalf("status %d %+v", status, tr)
		}
	})
	t.Run("scopes outside the client's maximum are invalid_scope", func(t *testing.T) {
		a := assertion(t, jose.ES384, sn.ecKey, "ec-1", "feed-es", aud, nil)
		if status, tr := sn.token(t, backendForm(a, "system/Observation.rs")); status != http.StatusBadRequest || tr.Error != "invalid_scope" {
			t.Errorf("status %d error %q, want invalid_scope", status, tr.Error)
		}
	})
	t.Run("a public app cannot use client_credentials", func(t *testing.T) {
		status, tr := sn.token(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "scope": {"system/*.rs"}})
		if status != http.StatusUnauthorized || tr.Error != "invalid_client" {
			t.Errorf("status %d error %q, want 401 invalid_client", status, tr.Error)
		}
	})
}

func (sn *smartNode) testAssertionAttacks(t *testing.T) {
	aud := sn.url + "/auth/token"
	pubDER, _ := x509.MarshalPKIXPublicKey(&sn.rsaKey.PublicKey)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	replayed := assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", aud, nil)
	if status, tr := sn.token(t, backendForm(replayed, "system/Patient.rs")); status != http.StatusOK {
		t.Fatalf("first use of the assertion: status %d %q", status, tr.Error)
	}
	now := time.Now()
	for _, c := range []struct {
		name string
		a    string
	}{
		{"no assertion", ""},
		{"alg none", b64json(map[string]string{"alg": "none", "kid": "rsa-1", "typ": "JWT"}) + "." +
			b64json(map[string]any{"iss": "feed", "sub": "feed", "aud": aud, "jti": randomID(), "exp": now.Add(time.Minute).Unix()}) + "."},
		{"HS256 signed with the client's public key", assertion(t, jose.HS256, pubDER, "rsa-1", "feed", aud, nil)},
		{"RS256 (not RS384)", assertion(t, jose.RS256, sn.rsaKey, "rsa-1", "feed", aud, nil)},
		{"an unknown kid", assertion(t, jose.RS384, sn.rsaKey, "rsa-9", "feed", aud, nil)},
		{"signed by another key under the registered kid", assertion(t, jose.RS384, otherRSA, "rsa-1", "feed", aud, nil)},
		{"ES384 under an RSA kid", assertion(t, jose.ES384, sn.ecKey, "rsa-1", "feed", aud, nil)},
		{"the wrong audience", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", sn.base, nil)},
		{"expired", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", aud, func(c *jwt.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-10 * time.Minute))
			c.Expiry = jwt.NewNumericDate(now.Add(-5 * time.Minute))
		})},
		{"exp more than five minutes ahead", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", aud, func(c *jwt.Claims) {
			c.Expiry = jwt.NewNumericDate(now.Add(time.Hour))
		})},
		{"no jti", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", aud, func(c *jwt.Claims) { c.ID = "" })},
		{"a replayed jti", replayed},
		{"sub is not the client", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", aud, func(c *jwt.Claims) { c.Subject = "feed-es" })},
		{"another client's name with this client's key", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed-es", aud, nil)},
		{"an unknown client", assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "ghost", aud, nil)},
		{"garbage", "not.a.jwt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, tr := sn.token(t, backendForm(c.a, "system/Patient.rs"))
			if status != http.StatusUnauthorized || tr.Error != "invalid_client" || tr.AccessToken != "" {
				t.Errorf("status %d error %q token %q, want 401 invalid_client and no token", status, tr.Error, tr.AccessToken)
			}
		})
	}
}

func (sn *smartNode) testAccessTokenAttacks(t *testing.T) {
	good := sn.login(t, "pat", "", "patient/*.rs").AccessToken
	parts := strings.Split(good, ".")
	var header map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(hb, &header)
	kid, _ := header["kid"].(string)
	var set jose.JSONWebKeySet
	_, body := sn.get(t, "/auth/jwks", "")
	json.Unmarshal(body, &set)
	pubJSON, _ := json.Marshal(set.Keys[0])

	// Another node's authority: a token valid there, signed by its own key.
	foreign, _ := auth.Load(context.Background(), backend.OpenSQLiteForTest(t), sn.base)
	foreignTok, _ := foreign.Issue(auth.Principal{Subject: "pat", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}}, time.Minute)
	// This node's key, the wrong audience.
	wrongAud, _ := auth.Load(context.Background(), sn.st, "https://elsewhere.example/fhir")
	wrongAudTok, _ := wrongAud.Issue(auth.Principal{Subject: "pat", Kind: auth.KindPatient}, time.Minute)
	expired, _ := auth.Load(context.Background(), sn.st, sn.base)
	expired.SetClock(func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expiredTok, _ := expired.Issue(auth.Principal{Subject: "pat", Kind: auth.KindPatient}, 30*time.Minute)
	claims := parts[1]
	for _, c := range []struct{ name, token string }{
		{"no token", ""},
		{"alg none", b64json(map[string]string{"alg": "none", "kid": kid, "typ": "JWT"}) + "." + claims + "."},
		{"HS256 signed with the node's public key", hs256(pubJSON, kid, claims)},
		{"an unknown kid", b64json(map[string]string{"alg": "EdDSA", "kid": "unknown", "typ": "JWT"}) + "." + claims + "." + parts[2]},
		{"another node's key", foreignTok},
		{"the wrong audience", wrongAudTok},
		{"expired", expiredTok},
		{"a tampered payload", parts[0] + "." + b64json(map[string]any{"sub": "admin", "kind": "admin"}) + "." + parts[2]},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := sn.fhirStatus(t, c.token); got != http.StatusUnauthorized {
				t.Errorf("FHIR request: status %d, want 401", got)
			}
			if in := sn.introspect(t, c.token+"x"); in["active"] != false {
				t.Errorf("introspection: %v, want inactive", in)
			}
		})
	}
	if got := sn.fhirStatus(t, good); got == http.StatusUnauthorized {
		t.Errorf("the untampered token: 401")
	}
}

// hs256 signs header.claims with HMAC-SHA256 keyed by key.
func hs256(key []byte, kid, claims string) string {
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	payload, _ := base64.RawURLEncoding.DecodeString(claims)
	obj, _ := s.Sign(payload)
	out, _ := obj.CompactSerialize()
	return out
}

func (sn *smartNode) testIntrospectRevoke(t *testing.T) {
	t.Run("introspection needs the operator, a system client or a confidential client", func(t *testing.T) {
		tr := sn.login(t, "pat", "", "patient/*.rs")
		resp, _ := sn.post(t, "/auth/introspect", url.Values{"token": {tr.AccessToken}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous introspection: status %d, want 401", resp.StatusCode)
		}
		resp, _ = sn.post(t, "/auth/introspect", url.Values{"token": {tr.AccessToken}, "client_id": {"app"}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("introspection by a public client: status %d, want 401", resp.StatusCode)
		}
		resp, _ = sn.post(t, "/auth/introspect", url.Values{"token": {tr.AccessToken}}, tr.AccessToken)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("introspection with a patient's bearer token: status %d, want 401", resp.StatusCode)
		}
		a := assertion(t, jose.RS384, sn.rsaKey, "rsa-1", "feed", sn.url+"/auth/token", nil)
		resp, body := sn.post(t, "/auth/introspect", url.Values{"token": {tr.AccessToken}, "client_assertion": {a},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"active":true`) {
			t.Errorf("introspection by a system client's assertion: status %d %s", resp.StatusCode, body)
		}
	})
	t.Run("revoking an access token takes effect on the next request and ends its session", func(t *testing.T) {
		tr := sn.login(t, "pat", "", "patient/*.rs online_access")
		if got := sn.fhirStatus(t, tr.AccessToken); got == http.StatusUnauthorized {
			t.Fatalf("token refused before revocation")
		}
		resp, body := sn.post(t, "/auth/revoke", url.Values{"token": {tr.AccessToken}, "client_id": {"app"}}, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: status %d %s", resp.StatusCode, body)
		}
		if got := sn.fhirStatus(t, tr.AccessToken); got != http.StatusUnauthorized {
			t.Errorf("revoked token on the next request: status %d, want 401", got)
		}
		if in := sn.introspect(t, tr.AccessToken); in["active"] != false {
			t.Errorf("introspection of a revoked token: %v", in)
		}
		if status, _ := sn.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {"app"}}); status != http.StatusBadRequest {
			t.Errorf("refresh after the access token was revoked: status %d, want 400", status)
		}
	})
	t.Run("revoking a refresh token ends the session's access tokens too", func(t *testing.T) {
		tr := sn.login(t, "pat", "", "patient/*.rs offline_access")
		if in := sn.introspect(t, tr.RefreshToken); in["active"] != true || in["token_type"] != "refresh_token" {
			t.Errorf("introspection of a live refresh token: %v", in)
		}
		resp, _ := sn.post(t, "/auth/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {"app"}}, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: status %d", resp.StatusCode)
		}
		if got := sn.fhirStatus(t, tr.AccessToken); got != http.StatusUnauthorized {
			t.Errorf("access token of a revoked session: status %d, want 401", got)
		}
	})
	t.Run("another client cannot revoke an app's token; unknown tokens are not an error", func(t *testing.T) {
		tr := sn.login(t, "pat", "", "patient/*.rs")
		resp, _ := sn.post(t, "/auth/revoke", url.Values{"token": {tr.AccessToken}, "client_id": {"other-app"}}, "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("revoke by another client: status %d, want 400", resp.StatusCode)
		}
		if got := sn.fhirStatus(t, tr.AccessToken); got == http.StatusUnauthorized {
			t.Errorf("a refused revocation revoked the token")
		}
		resp, _ = sn.post(t, "/auth/revoke", url.Values{"token": {"no-such-token"}, "client_id": {"app"}}, "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("revoke of an unknown token: status %d, want 200", resp.StatusCode)
		}
	})
	t.Run("the operator's token can be revoked too", func(t *testing.T) {
		tok, _ := sn.auth.IssueAdmin(time.Minute)
		resp, _ := sn.post(t, "/auth/revoke", url.Values{"token": {tok}}, sn.node.token)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: status %d", resp.StatusCode)
		}
		if got := sn.fhirStatus(t, tok); got != http.StatusUnauthorized {
			t.Errorf("revoked admin token: status %d, want 401", got)
		}
	})
}

func (sn *smartNode) testBadInput(t *testing.T) {
	long := strings.Repeat("x", 70<<10)
	for _, c := range []struct {
		method, path, ctype, body string
	}{
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "%zz=%"},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=" + long},
		{"POST", "/auth/token", "", "grant_type=client_credentials"},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=" + strings.Repeat("a", 300)},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=.&client_id=app"},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=a.b.c&client_id=app"},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_assertion_type=x&client_assertion=y"},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=e30.e30.e30"},
		{"POST", "/auth/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&grant_type=refresh_token"},
		{"GET", "/auth/token", "", ""},
		{"GET", "/auth/login", "", ""},
		{"POST", "/auth/login", "text/plain", "request=x"},
		{"POST", "/auth/login", "application/x-www-form-urlencoded", "request=" + long},
		{"GET", "/auth/authorize", "", ""},
		{"GET", "/auth/authorize?client_id=app&client_id=app", "", ""},
		{"POST", "/auth/authorize", "application/x-www-form-urlencoded", "%%%"},
		{"POST", "/auth/introspect", "application/x-www-form-urlencoded", "token=a.b.c"},
		{"POST", "/auth/introspect", "application/x-www-form-urlencoded", "token=x&token=y"},
		{"POST", "/auth/revoke", "application/x-www-form-urlencoded", ""},
		{"POST", "/auth/revoke", "application/x-www-form-urlencoded", "token=x&client_id=nobody"},
	} {
		req, _ := http.NewRequest(c.method, sn.url+c.path, strings.NewReader(c.body))
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		resp, body := sn.send(t, req)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s %.60q: status %d, want a 4xx: %.200s", c.method, c.path, c.body, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "panic") || strings.Contains(string(body), "goroutine") {
			t.Errorf("%s %s: the answer shows a panic", c.method, c.path)
		}
	}
}

func (sn *smartNode) testOIDCLink(t *testing.T) {
	ctx := context.Background()
	srv, err := smart.New(sn.auth, sn.st, smart.Config{BaseURL: sn.base})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetOIDC(ctx, &smart.OIDCProvider{Issuer: "http://127.0.0.1:9", ClientID: "sc", ClientSecret: "x", Name: "Care ID"}); err != nil {
		t.Fatal(err)
	}
	defer srv.SetOIDC(ctx, nil)
	_, challenge := pkce()
	_, body := sn.get(t, "/auth/authorize?"+sn.authorizeQuery(challenge, "user/*.rs").Encode(), "")
	m := requestField.FindSubmatch(body)
	if m == nil || !strings.Contains(string(body), `href="/auth/oidc?request=`+string(m[1])+`">log in with Care ID`) {
		t.Errorf("login page without the provider's link: %s", body)
	}
	// The provider is down: an error page, never a redirect anywhere.
	resp, _ := sn.get(t, "/auth/oidc?request="+string(m[1]), "")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("start with the provider unreachable: status %d location %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/auth/oidc?request=unknown", "/auth/oidc/callback?state=unknown&code=x", "/auth/oidc/callback"} {
		if resp, _ := sn.get(t, path, ""); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%s: status %d location %q, want 400 and no redirect", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}
