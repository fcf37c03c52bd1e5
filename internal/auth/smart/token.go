package smart

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// TokenResponse is the token endpoint's answer (RFC 6749 section 5.1, SMART
// App Launch v2 section 2.0.9).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Patient      string `json:"patient,omitempty"` // launch context of a patient or proxy token
}

// session is a user's grant to one app: what every access token and
// refresh of it carries. Refresh tokens are "session id.secret"; only the
// hash of the current secret is kept, and the hashes of spent ones, so
// that a spent refresh token presented again (a stolen copy) ends the
// session (RFC 9700 section 4.14.2, refresh token rotation).
type session struct {
	User    string               `json:"user"`
	Client  string               `json:"client"`
	Role    directory.Assignment `json:"role"`
	Scopes  []string             `json:"scopes"`
	Created time.Time            `json:"created"`
	Expires time.Time            `json:"expires"` // no refresh after this
	Refresh string               `json:"refresh,omitempty"`
	Spent   []string             `json:"spent,omitempty"`
}

// maxSpent bounds the spent refresh hashes a session keeps.
const maxSpent = 64

// Token handles a token request (the form of POST /auth/token).
func (s *Server) Token(ctx context.Context, form url.Values) (*TokenResponse, *Error) {
	for k, v := range form {
		if len(v) > 1 {
			return nil, oauthErr("invalid_request", "parameter %s is repeated", k)
		}
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		return s.codeGrant(ctx, form)
	case "refresh_token":
		return s.refreshGrant(ctx, form)
	case "client_credentials":
		return s.clientCredentials(ctx, form)
	case "":
		return nil, oauthErr("invalid_request", "grant_type is required")
	}
	return nil, oauthErr("unsupported_grant_type", "grant_type must be authorization_code, refresh_token or client_credentials")
}

// authenticateClient identifies the client of a token, introspection or
// revocation request: by client assertion (confidential and system
// clients: they must), or by client_id alone for public clients.
func (s *Server) authenticateClient(ctx context.Context, form url.Values) (*directory.Client, *Error) {
	if a := form.Get("client_assertion"); a != "" || form.Get("client_assertion_type") != "" {
		if form.Get("client_assertion_type") != AssertionType {
			return nil, oauthErr("invalid_client", "client_assertion_type must be %s", AssertionType)
		}
		c, err := s.authenticateAssertion(ctx, a)
		if err != nil {
			return nil, err
		}
		if id := form.Get("client_id"); id != "" && id != c.ID {
			return nil, oauthErr("invalid_client", "client_id does not match the client assertion")
		}
		return c, nil
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, oauthErr("invalid_client", "client authentication is required (client_assertion, or client_id for a public app)")
	}
	c, err := s.dir.Client(ctx, id)
	if fhir.IsKind(err, fhir.ENotFound) {
		return nil, oauthErr("invalid_client", "unknown client")
	}
	if err != nil {
		return nil, serverErr(err)
	}
	if c.Disabled {
		return nil, oauthErr("invalid_client", "unknown client")
	}
	if c.Type != directory.Public {
		return nil, oauthErr("invalid_client", "this client must authenticate with a client assertion (private_key_jwt)")
	}
	return c, nil
}

func (s *Server) codeGrant(ctx context.Context, form url.Values) (*TokenResponse, *Error) {
	c, oerr := s.authenticateClient(ctx, form)
	if oerr != nil {
		return nil, oerr
	}
	if c.Type == directory.System {
		return nil, oauthErr("unauthorized_client", "a system client uses client_credentials")
	}
	code := form.Get("code")
	if code == "" || len(code) > 256 {
		return nil, oauthErr("invalid_request", "code is required")
	}
	key := hashKey(code)
	var g codeGrant
	v, err := s.getJSON(ctx, bucketCodes, key, &g)
	if err != nil {
		return nil, serverErr(err)
	}
	used := func() (*TokenResponse, *Error) {
		// A second redemption means the code leaked: the session the first
		// one started is ended too (RFC 6749 section 4.1.2).
		if e, err := s.kv.KV(ctx, bucketUsed, key); err == nil && len(e.Value) > 0 {
			if err := s.endSession(ctx, string(e.Value)); err != nil {
				return nil, serverErr(err)
			}
		} else if err != nil && !fhir.IsKind(err, fhir.ENotFound) {
			return nil, serverErr(err)
		}
		return nil, oauthErr("invalid_grant", "the code is unknown, expired or used")
	}
	if v == 0 {
		return used()
	}
	// Single use, atomically across processes.
	created, err := s.kv.PutKVIfAbsent(ctx, &store.KV{Bucket: bucketUsed, Key: key, Expires: g.Expires.Add(time.Hour)})
	if err != nil {
		return nil, serverErr(err)
	}
	if !created {
		return used()
	}
	if err := s.kv.DeleteKV(ctx, bucketCodes, key); err != nil {
		return nil, serverErr(err)
	}
	switch {
	case g.Client != c.ID:
		return nil, oauthErr("invalid_grant", "the code was issued to another client")
	case s.a.Now().After(g.Expires):
		return nil, oauthErr("invalid_grant", "the code is unknown, expired or used")
	case form.Get("redirect_uri") != g.RedirectURI:
		return nil, oauthErr("invalid_grant", "redirect_uri differs from the authorisation request")
	case !pkceMatches(form.Get("code_verifier"), g.Challenge):
		return nil, oauthErr("invalid_grant", "code_verifier does not match the code_challenge")
	}
	var u *directory.User
	role := g.Role
	if g.External {
		// The provider vouched for this user a minute ago; the directory
		// does not know them, so nothing could be re-checked at a refresh:
		// the session gets no refresh token.
		u = &directory.User{Name: g.User, Roles: []directory.Assignment{g.Role}}
		g.Scopes = slices.DeleteFunc(g.Scopes, func(s string) bool { return s == auth.ScopeOfflineAccess || s == auth.ScopeOnlineAccess })
	} else {
		var oerr *Error
		if u, role, oerr = s.stillHolds(ctx, g.User, g.Role); oerr != nil {
			return nil, oerr
		}
	}
	now := s.a.Now()
	sid := randomToken(18)
	sess := session{User: u.Name, Client: c.ID, Role: role, Scopes: g.Scopes, Created: now}
	resp := &TokenResponse{}
	switch {
	case slices.Contains(g.Scopes, auth.ScopeOfflineAccess):
		sess.Expires = now.Add(s.cfg.OfflineTTL)
	case slices.Contains(g.Scopes, auth.ScopeOnlineAccess):
		sess.Expires = now.Add(s.cfg.OnlineTTL)
	default:
		// No refresh: the session lasts as long as its one access token.
		sess.Expires = now.Add(s.cfg.UserTokenTTL)
	}
	if sess.Expires.After(now.Add(s.cfg.UserTokenTTL)) {
		secret := randomToken(32)
		sess.Refresh = hashKey(secret)
		resp.RefreshToken = sid + "." + secret
	}
	if err := s.casJSON(ctx, bucketSessions, sid, sess, 0, sess.Expires.Add(auth.MaxTTL)); err != nil {
		return nil, serverErr(err)
	}
	if err := s.kv.PutKV(ctx, &store.KV{Bucket: bucketUsed, Key: key, Value: []byte(sid), Expires: g.Expires.Add(time.Hour)}); err != nil {
		return nil, serverErr(err)
	}
	return s.issueUser(ctx, u, role, c.ID, sid, sess.Scopes, resp)
}

// issueUser signs a user's access token for a session.
func (s *Server) issueUser(ctx context.Context, u *directory.User, role directory.Assignment, client, sid string, scopes []string, resp *TokenResponse) (*TokenResponse, *Error) {
	p, err := s.userPrincipal(ctx, u, role, client)
	if err != nil {
		return nil, serverErr(err)
	}
	p.Session = sid
	p.Scopes = scopes
	tok, issued, err := s.a.IssueToken(*p, s.cfg.UserTokenTTL)
	if err != nil {
		return nil, serverErr(err)
	}
	resp.AccessToken = tok
	resp.TokenType = "Bearer"
	resp.ExpiresIn = int(issued.Expires.Sub(issued.IssuedAt) / time.Second)
	resp.Scope = auth.ScopeString(scopes)
	resp.Patient = p.Patient
	return resp, nil
}

// stillHolds reloads a user and checks they may still log in in role: an
// account disabled or a role taken away stops codes and refreshes at once.
func (s *Server) stillHolds(ctx context.Context, name string, role directory.Assignment) (*directory.User, directory.Assignment, *Error) {
	u, err := s.dir.User(ctx, name)
	if fhir.IsKind(err, fhir.ENotFound) {
		return nil, role, oauthErr("invalid_grant", "the user no longer exists")
	}
	if err != nil {
		return nil, role, serverErr(err)
	}
	if u.Disabled {
		return nil, role, oauthErr("invalid_grant", "the user's account is disabled")
	}
	for _, r := range u.Roles {
		if r.Same(role) {
			return u, r, nil
		}
	}
	return nil, role, oauthErr("invalid_grant", "the user no longer holds role %s", role)
}

func (s *Server) refreshGrant(ctx context.Context, form url.Values) (*TokenResponse, *Error) {
	c, oerr := s.authenticateClient(ctx, form)
	if oerr != nil {
		return nil, oerr
	}
	sid, secret, ok := strings.Cut(form.Get("refresh_token"), ".")
	if !ok || sid == "" || secret == "" || len(sid) > 64 || len(secret) > 128 {
		return nil, oauthErr("invalid_grant", "the refresh token is unknown, expired or revoked")
	}
	for range 10 {
		var sess session
		v, err := s.getJSON(ctx, bucketSessions, sid, &sess)
		if err != nil {
			return nil, serverErr(err)
		}
		now := s.a.Now()
		if v == 0 || sess.Refresh == "" || now.After(sess.Expires) {
			return nil, oauthErr("invalid_grant", "the refresh token is unknown, expired or revoked")
		}
		h := hashKey(secret)
		if sess.Client != c.ID {
			return nil, oauthErr("invalid_grant", "the refresh token was issued to another client")
		}
		if h != sess.Refresh {
			if slices.Contains(sess.Spent, h) {
				// A spent token came back: one of the two holders is not
				// the app. End the session for both.
				if err := s.endSession(ctx, sid); err != nil {
					return nil, serverErr(err)
				}
			}
			return nil, oauthErr("invalid_grant", "the refresh token is unknown, expired or revoked")
		}
		scopes := sess.Scopes
		if req := strings.Fields(form.Get("scope")); len(req) > 0 {
			// A refresh may narrow the scopes, never widen them.
			for _, r := range req {
				if !slices.Contains(sess.Scopes, r) {
					return nil, oauthErr("invalid_scope", "scope %q was not granted to this session", r)
				}
			}
			scopes = req
		}
		u, role, oerr := s.stillHolds(ctx, sess.User, sess.Role)
		if oerr != nil {
			if err := s.endSession(ctx, sid); err != nil {
				return nil, serverErr(err)
			}
			return nil, oerr
		}
		next := randomToken(32)
		sess.Spent = append(sess.Spent, sess.Refresh)
		if len(sess.Spent) > maxSpent {
			sess.Spent = sess.Spent[len(sess.Spent)-maxSpent:]
		}
		sess.Refresh = hashKey(next)
		err = s.putJSON(ctx, bucketSessions, sid, sess, v, sess.Expires.Add(auth.MaxTTL))
		if fhir.IsKind(err, fhir.EConflict) {
			continue // a concurrent refresh: look again (this one is then spent)
		}
		if err != nil {
			return nil, serverErr(err)
		}
		return s.issueUser(ctx, u, role, c.ID, sid, scopes, &TokenResponse{RefreshToken: sid + "." + next})
	}
	return nil, oauthErr("invalid_grant", "the refresh token is unknown, expired or revoked")
}

// endSession revokes a session: no more refreshes, and its access tokens
// are refused from the next request on.
func (s *Server) endSession(ctx context.Context, sid string) error {
	if err := s.kv.DeleteKV(ctx, bucketSessions, sid); err != nil {
		return err
	}
	return s.revoked.revoke(ctx, "sid:"+sid, s.revokeUntil())
}

func (s *Server) clientCredentials(ctx context.Context, form url.Values) (*TokenResponse, *Error) {
	if form.Get("client_assertion") == "" {
		return nil, oauthErr("invalid_client", "client_credentials needs a client assertion (private_key_jwt)")
	}
	c, oerr := s.authenticateClient(ctx, form)
	if oerr != nil {
		return nil, oerr
	}
	if c.Type != directory.System {
		return nil, oauthErr("unauthorized_client", "only system clients may use client_credentials")
	}
	scopes := auth.GrantScopes(strings.Fields(form.Get("scope")), c.Scopes, "system")
	if !hasResourceScope(scopes) {
		return nil, oauthErr("invalid_scope", "none of the requested scopes is within the client's registered system/ scopes")
	}
	o, err := s.dir.Org(ctx, c.Org)
	if err != nil {
		if fhir.IsKind(err, fhir.ENotFound) {
			return nil, oauthErr("unauthorized_client", "the client's organisation is no longer registered")
		}
		return nil, serverErr(err)
	}
	p := auth.Principal{Subject: c.ID, Kind: auth.KindSystem, Scopes: scopes, Organisation: o.ODS, OrganisationType: o.Type,
		Role: "system", Client: c.ID}
	tok, issued, err := s.a.IssueToken(p, s.cfg.SystemTokenTTL)
	if err != nil {
		return nil, serverErr(err)
	}
	return &TokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(issued.Expires.Sub(issued.IssuedAt) / time.Second),
		Scope: auth.ScopeString(scopes)}, nil
}
