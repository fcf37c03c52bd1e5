package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/auth/smart"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// admin runs "sharedcare admin ARGS..." with stdin and returns its output.
func admin(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	adminIn, adminOut = strings.NewReader(stdin), &out
	t.Cleanup(func() { adminIn, adminOut = os.Stdin, os.Stdout })
	err := runAdmin(context.Background(), args)
	return out.String(), err
}

func mustAdmin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := admin(t, stdin, args...)
	if err != nil {
		t.Fatalf("admin %v: %v", args, err)
	}
	return out
}

func TestAdminCommand(t *testing.T) {
	t.Setenv("SHAREDCARE_DATA", "")
	t.Setenv("SHAREDCARE_DB", "")
	stores := []struct{ name, db string }{{"sqlite", ""}}
	if db := postgresDB(t); db != "" {
		stores = append(stores, struct{ name, db string }{"postgres", db})
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			data := t.TempDir()
			where := []string{"--data", data}
			if s.db != "" {
				where = append(where, "--db", s.db)
			}
			with := func(args ...string) []string { return append(args, where...) }
			const pw = "a long enough password\n"

			t.Run("org", func(t *testing.T) {
				mustAdmin(t, "", with("org", "create", "--ods", "rxx", "--type", "acute-trust", "--name", "Riverside Hospitals")...)
				if _, err := admin(t, "", with("org", "create", "--ods", "RXX", "--type", "acute-trust")...); !fhir.IsKind(err, fhir.EConflict) {
					t.Errorf("a second RXX: %v, want a conflict", err)
				}
				if _, err := admin(t, "", with("org", "create", "--ods", "RYY", "--type", "spaceport")...); !fhir.IsKind(err, fhir.EInvalid) {
					t.Errorf("an unknown organisation type: %v, want invalid", err)
				}
				csv := filepath.Join(t.TempDir(), "organisations.csv")
				os.WriteFile(csv, []byte("ods,type,name\nA81001,gp-practice,Elm Street Surgery\nRXX,acute-trust,Riverside\n"), 0o644)
				if out := mustAdmin(t, "", append(with("org", "import"), csv)...); !strings.Contains(out, "1 organisations created, 1 already registered") {
					t.Errorf("org import: %q", out)
				}
				out := mustAdmin(t, "", with("org", "list")...)
				for _, want := range []string{"A81001  gp-practice", "RXX     acute-trust  Riverside Hospitals"} {
					if !strings.Contains(out, want) {
						t.Errorf("org list lacks %q:\n%s", want, out)
					}
				}
			})
			t.Run("user", func(t *testing.T) {
				mustAdmin(t, pw, with("user", "create", "--name", "alice", "--role", "RXX:nurse", "--display", "Alice Smith")...)
				if _, err := admin(t, "short\n", with("user", "create", "--name", "bob")...); !fhir.IsKind(err, fhir.EInvalid) {
					t.Errorf("a short password: %v, want invalid", err)
				}
				if _, err := admin(t, pw, with("user", "create", "--name", "bob", "--role", "RZZ:nurse")...); !fhir.IsKind(err, fhir.EInvalid) {
					t.Errorf("a role at an unregistered organisation: %v, want invalid", err)
				}
				if _, err := admin(t, pw, with("user", "create", "--name", "bob", "--role", "RXX:astronaut")...); !fhir.IsKind(err, fhir.EInvalid) {
					t.Errorf("an unknown role: %v, want invalid", err)
				}
				if _, err := admin(t, pw, with("user", "create", "--name", "alice")...); !fhir.IsKind(err, fhir.EConflict) {
					t.Errorf("a second alice: %v, want a conflict", err)
				}
				out := mustAdmin(t, pw, with("user", "create", "--name", "pat", "--role", "patient:Patient/p1", "--totp")...)
				if !strings.Contains(out, "otpauth://totp/") {
					t.Errorf("user create --totp printed no enrolment URI: %q", out)
				}
				out = mustAdmin(t, "", with("user", "list")...)
				for _, want := range []string{"alice", "RXX:nurse", "pat", "patient:Patient/p1", "yes"} {
					if !strings.Contains(out, want) {
						t.Errorf("user list lacks %q:\n%s", want, out)
					}
				}
				if strings.Contains(out, "argon2") || strings.Contains(out, "a long enough password") {
					t.Errorf("user list shows a password or its hash:\n%s", out)
				}
			})
			t.Run("role", func(t *testing.T) {
				mustAdmin(t, "", with("role", "add", "--user", "alice", "--role", "A81001:clinician", "--fhir-user", "Practitioner/alice")...)
				if _, err := admin(t, "", with("role", "add", "--user", "alice", "--role", "A81001:clinician")...); !fhir.IsKind(err, fhir.EConflict) {
					t.Errorf("the same role twice: %v, want a conflict", err)
				}
				out := mustAdmin(t, "", with("role", "list", "--user", "alice")...)
				if !strings.Contains(out, "clinician") || !strings.Contains(out, "Practitioner/alice") || !strings.Contains(out, "nurse") {
					t.Errorf("role list:\n%s", out)
				}
				mustAdmin(t, "", with("role", "remove", "--user", "alice", "--role", "RXX:nurse")...)
				if out := mustAdmin(t, "", with("role", "list", "--user", "alice")...); strings.Contains(out, "nurse") {
					t.Errorf("role list after remove still shows nurse:\n%s", out)
				}
				if _, err := admin(t, "", with("role", "remove", "--user", "alice", "--role", "RXX:nurse")...); !fhir.IsKind(err, fhir.ENotFound) {
					t.Errorf("removing a role not held: %v, want not found", err)
				}
			})
			t.Run("client", func(t *testing.T) {
				mustAdmin(t, "", with("client", "create", "--id", "app", "--type", "public", "--redirect-uri", "https://app.example/cb",
					"--scope", "user/*.rs patient/*.rs offline_access")...)
				key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
				dir := t.TempDir()
				pub, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES384"}}})
				priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES384"}}})
				os.WriteFile(filepath.Join(dir, "pub.json"), pub, 0o644)
				os.WriteFile(filepath.Join(dir, "priv.json"), priv, 0o644)
				mustAdmin(t, "", with("client", "create", "--id", "feed", "--type", "system", "--org", "RXX", "--scope", "system/*.rs",
					"--jwks", filepath.Join(dir, "pub.json"))...)
				for _, bad := range []struct {
					name string
					args []string
				}{
					{"a private key", []string{"--id", "f2", "--type", "system", "--org", "RXX", "--scope", "system/*.rs", "--jwks", filepath.Join(dir, "priv.json")}},
					{"a system client without an organisation", []string{"--id", "f3", "--type", "system", "--scope", "system/*.rs", "--jwks", filepath.Join(dir, "pub.json")}},
					{"a system client with user scopes", []string{"--id", "f4", "--type", "system", "--org", "RXX", "--scope", "user/*.rs", "--jwks", filepath.Join(dir, "pub.json")}},
					{"a system client without keys", []string{"--id", "f5", "--type", "system", "--org", "RXX", "--scope", "system/*.rs"}},
					{"an app with an http redirect off loopback", []string{"--id", "a2", "--type", "public", "--scope", "user/*.rs", "--redirect-uri", "http://app.example/cb"}},
					{"an app without a redirect", []string{"--id", "a3", "--type", "public", "--scope", "user/*.rs"}},
					{"a scope with a query", []string{"--id", "a4", "--type", "public", "--scope", "patient/Observation.rs?category=x", "--redirect-uri", "https://a.example/cb"}},
				} {
					if _, err := admin(t, "", with(append([]string{"client", "create"}, bad.args...)...)...); err == nil {
						t.Errorf("client create with %s: got no error", bad.name)
					}
				}
				out := mustAdmin(t, "", with("client", "list")...)
				for _, want := range []string{"app", "public", "https://app.example/cb", "feed", "system", "RXX", "registered"} {
					if !strings.Contains(out, want) {
						t.Errorf("client list lacks %q:\n%s", want, out)
					}
				}
			})
			t.Run("oidc", func(t *testing.T) {
				secret := filepath.Join(t.TempDir(), "secret")
				os.WriteFile(secret, []byte("s3cret-value\n"), 0o600)
				out := mustAdmin(t, "", with("oidc", "set", "--issuer", "https://login.example.nhs.uk", "--client-id", "sharedcare", "--client-secret-file", secret)...)
				if !strings.Contains(out, "/auth/oidc/callback") {
					t.Errorf("oidc set: %q, want the callback to register", out)
				}
				out = mustAdmin(t, "", with("oidc", "show")...)
				if !strings.Contains(out, "https://login.example.nhs.uk") || !strings.Contains(out, "preferred_username") || strings.Contains(out, "s3cret") {
					t.Errorf("oidc show (must not show the secret):\n%s", out)
				}
				if _, err := admin(t, "", with("oidc", "set", "--issuer", "http://login.example", "--client-id", "x", "--client-secret-file", secret)...); !fhir.IsKind(err, fhir.EInvalid) {
					t.Errorf("an http issuer: %v, want invalid", err)
				}
				mustAdmin(t, "", with("oidc", "remove")...)
				if out := mustAdmin(t, "", with("oidc", "show")...); !strings.Contains(out, "no OpenID Connect provider") {
					t.Errorf("oidc show after remove: %q", out)
				}
			})
			t.Run("disabling a user ends their tokens", func(t *testing.T) {
				st, err := backend.Open(context.Background(), data, s.db)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				const base = "http://127.0.0.1:8080/fhir" // the default --addr
				// Removing a role above revoked alice's tokens; token times
				// are whole seconds and a token of the same second as a
				// revocation counts as revoked (fail closed).
				time.Sleep(1100 * time.Millisecond)
				a, err := auth.Load(context.Background(), st, base)
				if err != nil {
					t.Fatal(err)
				}
				srv, err := smart.New(a, st, smart.Config{BaseURL: base})
				if err != nil {
					t.Fatal(err)
				}
				tok, err := a.Issue(auth.Principal{Subject: "alice", Kind: auth.KindUser, Role: "clinician", Organisation: "A81001"}, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := srv.Verify(context.Background(), tok); err != nil {
					t.Fatalf("token before disabling: %v", err)
				}
				time.Sleep(time.Second) // token times are whole seconds: be issued strictly before the revocation
				mustAdmin(t, "", with("user", "disable", "--name", "alice")...)
				time.Sleep(1100 * time.Millisecond) // the server re-reads revocations made elsewhere every second
				if _, err := srv.Verify(context.Background(), tok); !fhir.IsKind(err, fhir.EUnauthorized) {
					t.Errorf("token after disabling: %v, want unauthorized", err)
				}
				if u, err := directory.New(st).User(context.Background(), "alice"); err != nil || !u.Disabled {
					t.Errorf("alice after disable: %+v, %v", u, err)
				}
				mustAdmin(t, "", with("user", "enable", "--name", "alice")...)
				if out := mustAdmin(t, "", with("user", "totp", "--name", "alice")...); !strings.Contains(out, "otpauth://totp/") {
					t.Errorf("user totp: %q", out)
				}
				if u, _ := directory.New(st).User(context.Background(), "alice"); u == nil || u.TOTPSecret == "" {
					t.Error("user totp stored no secret")
				}
				mustAdmin(t, "", with("user", "totp", "--name", "alice", "--off")...)
				old, _ := directory.New(st).User(context.Background(), "alice")
				mustAdmin(t, "another long password\n", with("user", "password", "--name", "alice")...)
				u, _ := directory.New(st).User(context.Background(), "alice")
				if u == nil || u.TOTPSecret != "" || u.PasswordHash == old.PasswordHash || !auth.CheckPassword(u.PasswordHash, "another long password") {
					t.Errorf("after totp --off and password: %+v", u)
				}
				mustAdmin(t, "", with("user", "unlock", "--name", "alice")...)
				if _, err := admin(t, "", with("user", "unlock", "--name", "nobody")...); !fhir.IsKind(err, fhir.ENotFound) {
					t.Errorf("unlock of an unknown user: %v, want not found", err)
				}
			})
		})
	}
}

func TestAdminCommandRefusesBadUsage(t *testing.T) {
	t.Setenv("SHAREDCARE_DATA", "")
	t.Setenv("SHAREDCARE_DB", "")
	for _, args := range [][]string{
		nil,
		{"org"},
		{"org", "destroy"},
		{"user", "list"}, // no store
		{"org", "list", "--data", t.TempDir(), "stray"}, // a stray argument
		{"role", "add", "--data", t.TempDir(), "--user", "a", "--role", "no-colon"},
	} {
		if _, err := admin(t, "", args...); !errors.As(err, new(usageError)) {
			t.Errorf("admin %v: %v, want a usage error", args, err)
		}
	}
}

// TestAdminThenLoginAgainstServe is the script an operator and an app run
// against the real binary: register an organisation, a user and a public
// app with "sharedcare admin", start "sharedcare serve", log in through the
// plain HTML form with an ordinary HTTP client, use the token, revoke it.
func TestAdminThenLoginAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	t.Setenv("SHAREDCARE_DATA", "")
	t.Setenv("SHAREDCARE_DB", "")
	bin := sharedcareBinary(t)
	data, addr := t.TempDir(), freeAddr(t)
	where := []string{"--data", data, "--addr", addr}
	base := "http://" + addr
	mustAdmin(t, "", append([]string{"org", "create", "--ods", "A81001", "--type", "gp-practice"}, where...)...)
	mustAdmin(t, "a long enough password\n", append([]string{"user", "create", "--name", "gp1", "--role", "A81001:clinician"}, where...)...)
	mustAdmin(t, "", append([]string{"client", "create", "--id", "app", "--type", "public", "--redirect-uri", "http://127.0.0.1:9/cb",
		"--scope", "user/*.rs online_access"}, where...)...)
	startServe(t, bin, where...)

	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u, bearer string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	post := func(path string, form url.Values) (*http.Response, string) {
		resp, err := hc.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get(base+"/fhir/.well-known/smart-configuration", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, base+"/auth/token") {
		t.Fatalf("discovery: %d %s", resp.StatusCode, body)
	}
	verifier := "a-verifier-of-at-least-forty-three-characters-xyz"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "scope": {"user/*.rs online_access"},
		"state": {"xyz"}, "aud": {base + "/fhir"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, page := get(base+"/auth/authorize?"+q.Encode(), "")
	m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("authorize: %d %s", resp.StatusCode, page)
	}
	resp, body := post("/auth/login", url.Values{"request": {m[1]}, "username": {"gp1"}, "password": {"a long enough password"}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("login: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}, "client_id": {"app"}})
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &tr) != nil || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	// serve decides a user's requests with the access model: a Patient
	// that does not exist is the 404 it is for anyone, not a 401, nor the
	// 403 a node without an access model gives every non-admin caller.
	if resp, body := get(base+"/fhir/Patient/nobody", tr.AccessToken); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the user's token on /fhir/Patient/nobody: %d %s, want 404", resp.StatusCode, body)
	}
	if resp, _ := post("/auth/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {"app"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := get(base+"/fhir/Patient/nobody", tr.AccessToken); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the token of a revoked session on /fhir: %d, want 401", resp.StatusCode)
	}
}
