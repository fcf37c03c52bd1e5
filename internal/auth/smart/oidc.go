package smart

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Login through an external OpenID Connect provider (issue 6: "optionally
// an external OpenID Connect provider, issuer configured; claims mapped to
// user, organisation ODS code and role"). The login form offers it beside
// the built-in accounts; the server is then a relying party using the
// authorisation code flow with PKCE and a nonce, and maps three claims of
// the verified id_token to the session's user, organisation and role. The
// provider is trusted for who the user is and what role they hold; the
// directory must still know the organisation, and the role must be a staff
// role. Such sessions get no refresh token: nothing the directory knows
// could be re-checked at a refresh.

// OIDCProvider is the configured provider, kept in the key-value space
// (sharedcare admin oidc set).
type OIDCProvider struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	UserClaim    string `json:"user_claim"` // default preferred_username
	OrgClaim     string `json:"org_claim"`  // default ods
	RoleClaim    string `json:"role_claim"` // default role
	Name         string `json:"name"`       // shown on the login page
}

const (
	bucketConfig  = "auth.config"
	keyOIDC       = "oidc"
	bucketOIDCReq = "auth.oidc" // provider logins in progress, by state
	// ExternalPrefix starts the user name of every user vouched for by the
	// provider, so that they never collide with a built-in account.
	ExternalPrefix = "oidc:"
)

// SetOIDC configures (or, with nil, removes) the provider.
func (s *Server) SetOIDC(ctx context.Context, p *OIDCProvider) error {
	if p == nil {
		return s.kv.DeleteKV(ctx, bucketConfig, keyOIDC)
	}
	u, err := url.Parse(p.Issuer)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fhir.Invalid("", "the issuer must be an https URL (http only on 127.0.0.1)")
	}
	if p.ClientID == "" || p.ClientSecret == "" {
		return fhir.Invalid("", "the provider needs the client id and secret this server is registered with")
	}
	if p.UserClaim == "" {
		p.UserClaim = "preferred_username"
	}
	if p.OrgClaim == "" {
		p.OrgClaim = "ods"
	}
	if p.RoleClaim == "" {
		p.RoleClaim = "role"
	}
	return s.putJSON(ctx, bucketConfig, keyOIDC, p, 0, time.Time{})
}

// OIDC returns the configured provider, nil when there is none.
func (s *Server) OIDC(ctx context.Context) (*OIDCProvider, error) {
	var p OIDCProvider
	v, err := s.getJSON(ctx, bucketConfig, keyOIDC, &p)
	if err != nil || v == 0 {
		return nil, err
	}
	return &p, nil
}

func isLoopbackHost(h string) bool { return h == "127.0.0.1" || h == "localhost" || h == "::1" }

// OIDCCallbackURL is the redirect URI to register at the provider.
func (s *Server) OIDCCallbackURL() string { return s.root + "/auth/oidc/callback" }

// oidcLogin is a provider login in progress.
type oidcLogin struct {
	Request  string `json:"request"` // the app's login request
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
}

// providerMeta is the part of the provider's discovery document used here.
type providerMeta struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

func (s *Server) providerMeta(ctx context.Context, p *OIDCProvider) (*providerMeta, error) {
	b, err := s.fetch(ctx, strings.TrimSuffix(p.Issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return nil, err
	}
	var m providerMeta
	if err := json.Unmarshal(b, &m); err != nil || m.Issuer != p.Issuer || m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "" {
		return nil, errors.New("the provider's discovery document is incomplete or names another issuer")
	}
	return &m, nil
}

func (s *Server) fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, errors.New("the provider cannot be reached")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the provider answered %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxJWKS))
}

// StartOIDC sends the browser of login request id to the provider.
func (s *Server) StartOIDC(ctx context.Context, request string) (string, error) {
	p, err := s.OIDC(ctx)
	if err != nil {
		return "", err
	}
	if p == nil {
		return "", &AuthorizeError{Code: "invalid_request", Description: "no external identity provider is configured"}
	}
	var req authRequest
	if v, err := s.getJSON(ctx, bucketRequests, request, &req); err != nil || v == 0 || request == "" {
		if err != nil {
			return "", err
		}
		return "", &AuthorizeError{Code: "invalid_request", Description: "this login has expired or was already used: go back to the app and start again"}
	}
	m, err := s.providerMeta(ctx, p)
	if err != nil {
		return "", &AuthorizeError{Code: "temporarily_unavailable", Description: err.Error()}
	}
	state, nonce, verifier := randomToken(24), randomToken(24), randomToken(32)
	if err := s.putJSON(ctx, bucketOIDCReq, state, oidcLogin{Request: request, Nonce: nonce, Verifier: verifier}, 0, s.a.Now().Add(requestTTL)); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(verifier))
	return withQuery(m.AuthorizationEndpoint, url.Values{"response_type": {"code"}, "client_id": {p.ClientID},
		"redirect_uri": {s.OIDCCallbackURL()}, "scope": {"openid profile"}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}), nil
}

// FinishOIDC handles the provider's redirect back (the query of
// /auth/oidc/callback) and returns where to send the browser: back to the
// app with a code or an error.
func (s *Server) FinishOIDC(ctx context.Context, q url.Values) (string, error) {
	fail := func(desc string) (string, error) {
		return "", &AuthorizeError{Code: "access_denied", Description: desc}
	}
	state := q.Get("state")
	var lg oidcLogin
	v, err := s.getJSON(ctx, bucketOIDCReq, state, &lg)
	if err != nil {
		return "", err
	}
	if v == 0 || state == "" {
		return fail("this login has expired or was already used: go back to the app and start again")
	}
	if err := s.kv.DeleteKV(ctx, bucketOIDCReq, state); err != nil {
		return "", err
	}
	var req authRequest
	if v, err := s.getJSON(ctx, bucketRequests, lg.Request, &req); err != nil || v == 0 {
		if err != nil {
			return "", err
		}
		return fail("this login has expired: go back to the app and start again")
	}
	if err := s.kv.DeleteKV(ctx, bucketRequests, lg.Request); err != nil {
		return "", err
	}
	back := func(code, desc string) (string, error) {
		return (&AuthorizeError{RedirectURI: req.RedirectURI, State: req.State, Code: code, Description: desc}).Redirect(), nil
	}
	if e := q.Get("error"); e != "" {
		return back("access_denied", "the identity provider did not log the user in")
	}
	p, err := s.OIDC(ctx)
	if err != nil {
		return "", err
	}
	if p == nil {
		return back("access_denied", "no external identity provider is configured")
	}
	m, err := s.providerMeta(ctx, p)
	if err != nil {
		return back("temporarily_unavailable", err.Error())
	}
	claims, err := s.redeemAtProvider(ctx, p, m, q.Get("code"), lg)
	if err != nil {
		return back("access_denied", "the identity provider's answer was refused: "+err.Error())
	}
	name, _ := claims[p.UserClaim].(string)
	ods, _ := claims[p.OrgClaim].(string)
	roleName, _ := claims[p.RoleClaim].(string)
	if name == "" || ods == "" || roleName == "" {
		return back("access_denied", fmt.Sprintf("the identity provider gave no %s, %s or %s claim", p.UserClaim, p.OrgClaim, p.RoleClaim))
	}
	role := directory.Assignment{Org: strings.ToUpper(ods), Role: roleName}
	if roleName == directory.RolePatient || roleName == directory.RoleProxy || !slices.Contains(directory.Roles, roleName) {
		return back("access_denied", "the identity provider's role is not a staff role of this node")
	}
	if _, err := s.dir.Org(ctx, role.Org); err != nil {
		if fhir.IsKind(err, fhir.ENotFound) {
			return back("access_denied", "the identity provider's organisation is not registered on this node")
		}
		return "", err
	}
	c, err := s.dir.Client(ctx, req.Client)
	if err != nil || c.Disabled {
		if err == nil || fhir.IsKind(err, fhir.ENotFound) {
			return back("unauthorized_client", "the app is no longer registered")
		}
		return "", err
	}
	u := &directory.User{Name: ExternalPrefix + name, Roles: []directory.Assignment{role}}
	return s.issueCode(ctx, &req, c, u, role, true)
}

// idTokenAlgs are the signatures accepted on the provider's id_token: the
// asymmetric ones OpenID Connect providers use (RS256 is mandatory to
// implement); never "none" or HMAC.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.PS256}

// redeemAtProvider exchanges the provider's code and verifies its id_token
// (OpenID Connect Core 3.1.3.7): signature by a key of the provider's
// JWKS, iss, aud, exp, and the nonce of this login.
func (s *Server) redeemAtProvider(ctx context.Context, p *OIDCProvider, m *providerMeta, code string, lg oidcLogin) (map[string]any, error) {
	if code == "" {
		return nil, errors.New("no code")
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.OIDCCallbackURL()}, "code_verifier": {lg.Verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, errors.New("the token endpoint cannot be reached")
	}
	defer resp.Body.Close()
	var tr struct {
		IDToken string `json:"id_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&tr) != nil || tr.IDToken == "" {
		return nil, errors.New("no id_token")
	}
	tok, err := jwt.ParseSigned(tr.IDToken, idTokenAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, errors.New("the id_token is not a signed JWT")
	}
	set, err := s.keys.get(ctx, m.JWKSURI, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var key any
	for _, k := range set.Key(tok.Headers[0].KeyID) {
		if k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			key = k.Key
			break
		}
	}
	if key == nil {
		return nil, errors.New("the id_token is signed by an unknown key")
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(key, &std, &all); err != nil {
		return nil, errors.New("the id_token signature is invalid")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: p.Issuer, AnyAudience: jwt.Audience{p.ClientID}, Time: s.a.Now()}, auth.Leeway); err != nil || std.Expiry == nil {
		return nil, errors.New("the id_token is expired or meant for another issuer or client")
	}
	if nonce, _ := all["nonce"].(string); nonce != lg.Nonce {
		return nil, errors.New("the id_token nonce does not match this login")
	}
	return all, nil
}
