// Package smart is the node's authorisation server: SMART App Launch v2
// (authorisation code with PKCE for user-facing apps, through a plain HTML
// login form), SMART Backend Services (client credentials with
// private_key_jwt for system-to-system feeds), refresh, token
// introspection (RFC 7662) and revocation (RFC 7009), and optionally login
// through an external OpenID Connect provider (oidc.go).
//
// It decides who gets a token and what the token says; the access layer
// decides what the token's holder may see. Tokens are the node's own
// (auth.Authority). Everything the server remembers (login requests,
// authorisation codes, sessions with their refresh tokens, revocations,
// client assertion jtis, failed logins) is in the store's key-value space,
// so a restart or a second process sharing the store sees the same state.
// Codes and refresh tokens are stored only as SHA-256 hashes.
//
// The HTTP side (forms, redirects, JSON) is internal/api/smart.go; this
// package takes parsed parameters and returns results or *Error values in
// OAuth's error vocabulary.
package smart

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Config is the server's policy. Zero fields take the defaults below.
type Config struct {
	// BaseURL is the node's FHIR base URL (".../fhir"): the tokens' issuer
	// and audience, and the aud an app must send to /auth/authorize. The
	// /auth endpoints live beside /fhir on the same origin.
	BaseURL string
	// UserTokenTTL is the lifetime of a user's access token: default 15
	// minutes, at most an hour (issue 6). Apps refresh.
	UserTokenTTL time.Duration
	// SystemTokenTTL is the lifetime of a system client's access token:
	// default and at most 5 minutes (issue 6); a feed asks again.
	SystemTokenTTL time.Duration
	// OnlineTTL is how long a session with online_access may be refreshed:
	// default 12 hours, a clinical shift.
	OnlineTTL time.Duration
	// OfflineTTL is how long a session with offline_access may be
	// refreshed: default 30 days.
	OfflineTTL time.Duration
	// MaxFailures is how many failed logins in a row lock an account
	// (default 5) and Lockout how long (default 15 minutes).
	MaxFailures int
	Lockout     time.Duration
	// HTTPClient fetches clients' JWKS URLs (default: 5 s timeout, no
	// redirects).
	HTTPClient *http.Client
}

// Limits of the issue.
const (
	maxUserTTL   = time.Hour
	maxSystemTTL = 5 * time.Minute
	requestTTL   = 10 * time.Minute // a login form may be filled in for this long
	codeTTL      = time.Minute      // an authorisation code must be redeemed this fast
	// maxAssertionLife bounds a client assertion's exp from now (SMART
	// Backend Services: "no more than five minutes in the future").
	maxAssertionLife = 5 * time.Minute
)

func (c *Config) defaults() error {
	if c.UserTokenTTL == 0 {
		c.UserTokenTTL = 15 * time.Minute
	}
	if c.SystemTokenTTL == 0 {
		c.SystemTokenTTL = maxSystemTTL
	}
	if c.OnlineTTL == 0 {
		c.OnlineTTL = 12 * time.Hour
	}
	if c.OfflineTTL == 0 {
		c.OfflineTTL = 30 * 24 * time.Hour
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = 5
	}
	if c.Lockout == 0 {
		c.Lockout = 15 * time.Minute
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout:       5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	switch {
	case c.UserTokenTTL < 0 || c.UserTokenTTL > maxUserTTL:
		return fmt.Errorf("smart: user token lifetime %s must be at most %s", c.UserTokenTTL, maxUserTTL)
	case c.SystemTokenTTL < 0 || c.SystemTokenTTL > maxSystemTTL:
		return fmt.Errorf("smart: system token lifetime %s must be at most %s", c.SystemTokenTTL, maxSystemTTL)
	case !strings.HasPrefix(c.BaseURL, "http"):
		return fmt.Errorf("smart: base URL %q must be an http(s) URL", c.BaseURL)
	}
	return nil
}

// Server is the authorisation server of one node.
type Server struct {
	a       *auth.Authority
	kv      store.KVStore
	dir     *directory.Directory
	cfg     Config
	root    string // the origin and path prefix of /auth: BaseURL without its /fhir
	revoked *revocations
	keys    *keyCache
}

// New returns the server issuing tokens with a and keeping its state in kv.
func New(a *auth.Authority, kv store.KVStore, cfg Config) (*Server, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = a.Issuer()
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{
		a:    a,
		kv:   kv,
		dir:  directory.New(kv),
		cfg:  cfg,
		root: strings.TrimSuffix(strings.TrimSuffix(cfg.BaseURL, "/"), "/fhir"),
	}
	s.revoked = newRevocations(kv, a.Now)
	s.keys = newKeyCache(cfg.HTTPClient, a.Now)
	return s, nil
}

// Directory is the register the server authenticates against.
func (s *Server) Directory() *directory.Directory { return s.dir }

// Authority is the token signer.
func (s *Server) Authority() *auth.Authority { return s.a }

// Endpoint URLs.
func (s *Server) authorizeURL() string  { return s.root + "/auth/authorize" }
func (s *Server) tokenURL() string      { return s.root + "/auth/token" }
func (s *Server) introspectURL() string { return s.root + "/auth/introspect" }
func (s *Server) revokeURL() string     { return s.root + "/auth/revoke" }
func (s *Server) jwksURL() string       { return s.root + "/auth/jwks" }

// TokenURL is the token endpoint: the aud a client assertion must carry.
func (s *Server) TokenURL() string { return s.tokenURL() }

// Discovery is the SMART configuration document
// (/.well-known/smart-configuration, SMART App Launch v2 section 2.1).
func (s *Server) Discovery() map[string]any {
	return map[string]any{
		"issuer":                                s.cfg.BaseURL,
		"jwks_uri":                              s.jwksURL(),
		"authorization_endpoint":                s.authorizeURL(),
		"token_endpoint":                        s.tokenURL(),
		"introspection_endpoint":                s.introspectURL(),
		"revocation_endpoint":                   s.revokeURL(),
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"response_types_supported":                         []string{"code"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"scopes_supported": []string{"patient/*.cruds", "user/*.cruds", "system/*.cruds", "patient/*.read", "user/*.read",
			"system/*.read", auth.ScopeOfflineAccess, auth.ScopeOnlineAccess, auth.ScopeLaunchPatient},
		"capabilities": []string{
			"launch-standalone", "authorize-post",
			"client-public", "client-confidential-asymmetric",
			"context-standalone-patient",
			"permission-patient", "permission-user", "permission-offline", "permission-online",
			"permission-v1", "permission-v2",
		},
	}
}

// JWKS is the node's public signing keys.
func (s *Server) JWKS() any { return s.a.JWKS() }

// Error is an OAuth 2.0 error response (RFC 6749 section 5.2).
type Error struct {
	Status      int    // HTTP status: 400, or 401 for invalid_client
	Code        string // invalid_request, invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope
	Description string // safe to show the client
	// Err is a failure of the server itself (a store error): the HTTP layer
	// logs it and answers 500 or 503, never showing it.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Err }

func oauthErr(code, format string, args ...any) *Error {
	status := http.StatusBadRequest
	if code == "invalid_client" {
		status = http.StatusUnauthorized
	}
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// serverErr wraps a store failure: unavailable stays unavailable (503),
// anything else is internal (500).
func serverErr(err error) *Error {
	status := http.StatusInternalServerError
	if fhir.IsKind(err, fhir.EUnavailable) {
		status = http.StatusServiceUnavailable
	}
	return &Error{Status: status, Code: "server_error", Description: "the server could not complete the request", Err: err}
}

// asOAuth turns any error into an *Error.
func asOAuth(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return serverErr(err)
}

// randomToken returns n random bytes in base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashKey is how codes and refresh secrets are keyed in the store: a leak
// of the store does not hand out live credentials.
func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// getJSON reads a KV entry into v, reporting its version (0 when absent).
func (s *Server) getJSON(ctx context.Context, bucket, key string, v any) (int64, error) {
	e, err := s.kv.KV(ctx, bucket, key)
	if fhir.IsKind(err, fhir.ENotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return 0, fhir.Internal(fmt.Errorf("smart: %s entry: %w", bucket, err))
	}
	return e.Version, nil
}

// putJSON writes v (compare-and-swap when version is not 0).
func (s *Server) putJSON(ctx context.Context, bucket, key string, v any, version int64, expires time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fhir.Internal(err)
	}
	return s.kv.PutKV(ctx, &store.KV{Bucket: bucket, Key: key, Value: b, Version: version, Expires: expires})
}

// Buckets of the key-value space the server owns.
const (
	bucketRequests = "auth.request" // login requests in progress, by random id
	bucketCodes    = "auth.code"    // authorisation codes, by hash
	bucketUsed     = "auth.used"    // redeemed codes, by hash (single use)
	bucketSessions = "auth.session" // user sessions (refreshable grants), by id
	bucketRevoked  = "auth.revoked" // "jti:", "sid:" and "sub:" revocations
	bucketJTI      = "auth.jti"     // client assertion jtis seen, by client|jti
	bucketLogins   = "auth.login"   // failed-login counters and TOTP steps, by user
)

// casJSON writes v only if the entry is still at version (0: still
// absent); EConflict otherwise.
func (s *Server) casJSON(ctx context.Context, bucket, key string, v any, version int64, expires time.Time) error {
	if version != 0 {
		return s.putJSON(ctx, bucket, key, v, version, expires)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fhir.Internal(err)
	}
	created, err := s.kv.PutKVIfAbsent(ctx, &store.KV{Bucket: bucket, Key: key, Value: b, Expires: expires})
	if err != nil {
		return err
	}
	if !created {
		return fhir.Errorf(fhir.EConflict, "", "%s entry changed", bucket)
	}
	return nil
}
