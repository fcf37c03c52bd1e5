package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// The authorisation code flow with PKCE (SMART App Launch v2 standalone
// launch, RFC 6749 section 4.1, RFC 7636): /auth/authorize checks the
// app's request and shows the login form; /auth/login checks the user and
// the role they chose and sends the browser back to the app with a code;
// the app redeems the code at /auth/token with its code_verifier.

// authRequest is a login in progress, stored under a random id that the
// form carries (it is also what ties the form post to this request).
type authRequest struct {
	Client      string   `json:"client"`
	RedirectURI string   `json:"redirect_uri"`
	State       string   `json:"state"`
	Scopes      []string `json:"scopes"`
	Challenge   string   `json:"challenge"`
	// User is set once the password (and code) checked out and the user
	// has more than one role to choose from.
	User string `json:"user,omitempty"`
}

// codeGrant is what an authorisation code stands for.
type codeGrant struct {
	Client      string               `json:"client"`
	RedirectURI string               `json:"redirect_uri"`
	Challenge   string               `json:"challenge"`
	User        string               `json:"user"`
	Role        directory.Assignment `json:"role"`
	Scopes      []string             `json:"scopes"`
	Expires     time.Time            `json:"expires"`
	External    bool                 `json:"external,omitempty"` // vouched for by the OpenID Connect provider
}

// AuthorizeError is a refusal of an authorisation request. With
// RedirectURI set, the error goes back to the app (RFC 6749 section
// 4.1.2.1); without it (unknown client or redirect URI), it must be shown
// to the user and never redirected.
type AuthorizeError struct {
	RedirectURI string
	State       string
	Code        string
	Description string
}

func (e *AuthorizeError) Error() string { return e.Code + ": " + e.Description }

// Redirect is the URL to send the browser to with the error.
func (e *AuthorizeError) Redirect() string {
	return withQuery(e.RedirectURI, url.Values{"error": {e.Code}, "error_description": {e.Description}, "state": {e.State}})
}

// LoginPage is what the login form needs.
type LoginPage struct {
	Request    string // the login request id, a hidden field
	ClientName string
	Scopes     []string
	Error      string                 // shown above the form after a failed attempt
	Choose     []directory.Assignment // set when the user must pick one role
	// External names the OpenID Connect provider the user may log in
	// with instead (a link to /auth/oidc?request=...); "" when none.
	External string
}

// loginPage is the form for request id.
func (s *Server) loginPage(ctx context.Context, id string, c *directory.Client, scopes []string) (*LoginPage, error) {
	page := &LoginPage{Request: id, ClientName: clientName(c), Scopes: scopes}
	p, err := s.OIDC(ctx)
	if err != nil {
		return nil, err
	}
	if p != nil {
		page.External = p.Name
		if page.External == "" {
			page.External = p.Issuer
		}
	}
	return page, nil
}

// Authorize checks an authorisation request (the query of GET
// /auth/authorize or the form of POST) and starts a login. Errors are
// *AuthorizeError (a refusal) or store failures.
func (s *Server) Authorize(ctx context.Context, q url.Values) (*LoginPage, error) {
	for k, v := range q {
		if len(v) > 1 {
			return nil, &AuthorizeError{Code: "invalid_request", Description: "parameter " + k + " is repeated"}
		}
	}
	c, err := s.dir.Client(ctx, q.Get("client_id"))
	if fhir.IsKind(err, fhir.ENotFound) || err == nil && (c.Disabled || c.Type == directory.System) {
		return nil, &AuthorizeError{Code: "unauthorized_client", Description: "unknown client_id"}
	}
	if err != nil {
		return nil, err
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(c.RedirectURIs, redirect) {
		// Exact match (RFC 9700 section 2.1): never redirect anywhere else.
		return nil, &AuthorizeError{Code: "invalid_request", Description: "redirect_uri is not registered for this client"}
	}
	state := q.Get("state")
	fail := func(code, desc string) (*LoginPage, error) {
		return nil, &AuthorizeError{RedirectURI: redirect, State: state, Code: code, Description: desc}
	}
	switch {
	case q.Get("response_type") != "code":
		return fail("unsupported_response_type", "response_type must be code")
	case state == "" || len(state) > 1024:
		return fail("invalid_request", "state is required (at most 1024 characters)")
	case q.Get("aud") != s.cfg.BaseURL:
		// SMART: the app names the FHIR server it means, so that a token
		// for this server is never handed to an app aiming elsewhere.
		return fail("invalid_request", "aud must be this server's FHIR base URL "+s.cfg.BaseURL)
	case q.Get("code_challenge_method") != "S256":
		return fail("invalid_request", "PKCE is required with code_challenge_method S256")
	case !validChallenge(q.Get("code_challenge")):
		return fail("invalid_request", "code_challenge must be 43 base64url characters (S256)")
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 || len(scopes) > 100 {
		return fail("invalid_scope", "scope is required")
	}
	id := randomToken(32)
	req := authRequest{Client: c.ID, RedirectURI: redirect, State: state, Scopes: scopes, Challenge: q.Get("code_challenge")}
	if err := s.putJSON(ctx, bucketRequests, id, req, 0, s.a.Now().Add(requestTTL)); err != nil {
		return nil, err
	}
	return s.loginPage(ctx, id, c, scopes)
}

func clientName(c *directory.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func validChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// LoginForm is a submitted login form.
type LoginForm struct {
	Request  string
	Username string
	Password string
	TOTP     string
	Role     string // "ORG:role" or "role:Patient/id"; optional when the user holds one role
}

// LoginResult is the outcome of a login form: either Redirect (back to the
// app with a code, or with an error) or Page (the form again, with an
// error or the roles to choose from).
type LoginResult struct {
	Redirect string
	Page     *LoginPage
	Failed   bool // Page shows a failed attempt (the HTTP layer answers 401)
	// User is the user name once the user has proved who they are (the
	// role step and a success), for the audit entry; Role the assignment
	// chosen, once chosen; Client the app.
	User   string
	Role   directory.Assignment
	Client string
}

// loginFailed is the one message for every failed login: it never says
// whether the account exists, which factor was wrong, or that the account
// is locked (that would confirm the password was right).
const loginFailed = "The user name, password or one-time code is not right, or the account is locked. Try again later or ask your administrator."

// Login handles a posted login form.
func (s *Server) Login(ctx context.Context, f LoginForm) (*LoginResult, error) {
	var req authRequest
	v, err := s.getJSON(ctx, bucketRequests, f.Request, &req)
	if err != nil {
		return nil, err
	}
	if v == 0 || f.Request == "" {
		return nil, &AuthorizeError{Code: "invalid_request", Description: "this login has expired or was already used: go back to the app and start again"}
	}
	c, err := s.dir.Client(ctx, req.Client)
	if err != nil || c.Disabled {
		if err == nil || fhir.IsKind(err, fhir.ENotFound) {
			return nil, &AuthorizeError{Code: "unauthorized_client", Description: "the app is no longer registered"}
		}
		return nil, err
	}
	page, err := s.loginPage(ctx, f.Request, c, req.Scopes)
	if err != nil {
		return nil, err
	}

	var u *directory.User
	if req.User != "" && f.Password == "" {
		// Second step: the user already proved who they are for this
		// request and is choosing a role.
		if u, err = s.dir.User(ctx, req.User); err != nil || u.Disabled {
			if err == nil || fhir.IsKind(err, fhir.ENotFound) {
				page.Error = loginFailed
				return &LoginResult{Page: page, Failed: true}, nil
			}
			return nil, err
		}
	} else {
		ok, user, err := s.checkCredentials(ctx, f.Username, f.Password, f.TOTP)
		if err != nil {
			return nil, err
		}
		if !ok {
			page.Error = loginFailed
			return &LoginResult{Page: page, Failed: true}, nil
		}
		u = user
	}

	role, ok := chooseRole(u.Roles, f.Role)
	if !ok {
		if len(u.Roles) == 0 {
			page.Error = "Your account has no role at any organisation. Ask your administrator."
			return &LoginResult{Page: page, Failed: true}, nil
		}
		// Remember who logged in, and ask which role this session is in.
		req.User = u.Name
		if err := s.putJSON(ctx, bucketRequests, f.Request, req, v, s.a.Now().Add(requestTTL)); err != nil {
			if fhir.IsKind(err, fhir.EConflict) {
				return nil, &AuthorizeError{Code: "invalid_request", Description: "this login was used twice at once: start again"}
			}
			return nil, err
		}
		page.Choose = u.Roles
		if f.Role != "" {
			page.Error = "Choose one of your roles."
		}
		return &LoginResult{Page: page, User: u.Name, Client: c.ID}, nil
	}

	// The request is used up whatever happens next.
	if err := s.kv.DeleteKV(ctx, bucketRequests, f.Request); err != nil {
		return nil, err
	}
	redirect, err := s.issueCode(ctx, &req, c, u, role, false)
	if err != nil {
		return nil, err
	}
	return &LoginResult{Redirect: redirect, User: u.Name, Role: role, Client: c.ID}, nil
}

// issueCode ends a login that proved who the user is (u, in role): it
// grants the scopes the app may have for that role and returns the
// redirect back to the app, with a code or an error. external marks a
// user vouched for by the OpenID Connect provider rather than the
// directory.
func (s *Server) issueCode(ctx context.Context, req *authRequest, c *directory.Client, u *directory.User, role directory.Assignment, external bool) (string, error) {
	back := func(code, desc string) (string, error) {
		e := &AuthorizeError{RedirectURI: req.RedirectURI, State: req.State, Code: code, Description: desc}
		return e.Redirect(), nil
	}
	p, err := s.userPrincipal(ctx, u, role, c.ID)
	if err != nil {
		return "", err
	}
	scopes := auth.GrantScopes(req.Scopes, c.Scopes, scopeContext(p.Kind))
	if p.Kind != auth.KindPatient {
		scopes = slices.DeleteFunc(scopes, func(s string) bool { return s == auth.ScopeLaunchPatient })
	}
	if !hasResourceScope(scopes) {
		return back("invalid_scope", "none of the requested scopes can be granted to this app for this role")
	}
	code := randomToken(32)
	g := codeGrant{Client: c.ID, RedirectURI: req.RedirectURI, Challenge: req.Challenge, User: u.Name, Role: role,
		Scopes: scopes, Expires: s.a.Now().Add(codeTTL), External: external}
	if err := s.putJSON(ctx, bucketCodes, hashKey(code), g, 0, g.Expires.Add(auth.Leeway)); err != nil {
		return "", err
	}
	return withQuery(req.RedirectURI, url.Values{"code": {code}, "state": {req.State}}), nil
}

// chooseRole picks the session's role: the one asked for, if the user
// holds it; else the only one they hold.
func chooseRole(roles []directory.Assignment, asked string) (directory.Assignment, bool) {
	if asked != "" {
		a, err := directory.ParseAssignment(asked)
		if err != nil {
			return directory.Assignment{}, false
		}
		for _, r := range roles {
			if r.Same(a) {
				return r, true
			}
		}
		return directory.Assignment{}, false
	}
	if len(roles) == 1 {
		return roles[0], true
	}
	return directory.Assignment{}, false
}

// scopeContext is the SMART scope context a kind of caller is granted:
// patients and proxies patient/ scopes, staff user/ scopes, systems
// system/ scopes.
func scopeContext(k auth.Kind) string {
	switch k {
	case auth.KindPatient:
		return "patient"
	case auth.KindSystem:
		return "system"
	}
	return "user"
}

func hasResourceScope(scopes []string) bool {
	for _, s := range scopes {
		if _, ok := auth.ParseResourceScope(s); ok {
			return true
		}
	}
	return false
}

// userPrincipal is what a user's token says in the chosen role.
func (s *Server) userPrincipal(ctx context.Context, u *directory.User, role directory.Assignment, client string) (*auth.Principal, error) {
	p := &auth.Principal{Subject: u.Name, User: u.Name, Kind: auth.KindUser, Role: role.Role, Client: client, FHIRUser: role.FHIRUser}
	if role.Role == directory.RolePatient || role.Role == directory.RoleProxy {
		// The access model knows patients and proxies by the resource they
		// are (Patient/x, RelatedPerson/y: the one the person's Consent
		// names as proxy); the directory requires it for these roles.
		p.Kind = auth.KindPatient
		p.Subject = role.FHIRUser
		p.Patient = role.Patient
		return p, nil
	}
	o, err := s.dir.Org(ctx, role.Org)
	if err != nil {
		return nil, err
	}
	p.Organisation = o.ODS
	p.OrganisationType = o.Type
	return p, nil
}

// pkceMatches checks RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// withQuery adds parameters to a redirect URI that may have a query.
func withQuery(base string, add url.Values) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	for k, vs := range add {
		for _, v := range vs {
			if v != "" {
				q.Set(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
