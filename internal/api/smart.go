package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/auth/smart"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The SMART authorisation server's HTTP side: discovery, the authorisation
// and login pages, and the token, introspection, revocation and key
// endpoints. The OAuth endpoints answer in OAuth's own error format
// ({"error": ..., "error_description": ...}, RFC 6749 section 5.2), which
// is what every OAuth and SMART client reads; the FHIR endpoints keep
// OperationOutcome. The decisions are package smart's; this file only
// parses and renders.

// smartHandler serves the /auth routes.
type smartHandler struct {
	h   *handler
	srv *smart.Server
}

// smartRoutes registers the authorisation server's routes when the node
// has one: the verifier is a *smart.Server, or an *auth.Authority loaded
// from a store with a key-value space (every real store), from which the
// server is built. The server then becomes the verifier of every FHIR
// request too, so that revocation applies to them.
func (h *handler) smartRoutes() {
	// With access control on, the verifier is wrapped with the decider
	// (access.go): the SMART server goes inside the wrapper.
	slot := &h.verifier
	if g, ok := h.verifier.(*guarded); ok {
		slot = &g.Verifier
	}
	var srv *smart.Server
	switch v := (*slot).(type) {
	case *smart.Server:
		srv = v
	case *auth.Authority:
		kv, ok := v.Store().(store.KVStore)
		if !ok {
			return
		}
		s, err := smart.New(v, kv, smart.Config{BaseURL: h.cfg.BaseURL})
		if err != nil {
			h.log.Error("SMART authorisation server not started", "error", err)
			return
		}
		srv = s
	default:
		return
	}
	*slot = srv
	sh := &smartHandler{h: h, srv: srv}
	m := h.mux
	m.HandleFunc("GET /.well-known/smart-configuration", sh.discovery)
	m.HandleFunc("GET /fhir/.well-known/smart-configuration", sh.discovery)
	m.HandleFunc("GET /auth/authorize", sh.authorize)
	m.HandleFunc("POST /auth/authorize", sh.authorize)
	m.HandleFunc("POST /auth/login", sh.login)
	m.HandleFunc("POST /auth/token", sh.token)
	m.HandleFunc("POST /auth/introspect", sh.introspect)
	m.HandleFunc("POST /auth/revoke", sh.revoke)
	m.HandleFunc("GET /auth/jwks", sh.jwks)
	m.HandleFunc("GET /auth/oidc", sh.oidcStart)
	m.HandleFunc("GET /auth/oidc/callback", sh.oidcCallback)
}

func (sh *smartHandler) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*") // public, and browser apps read it
	sh.json(w, http.StatusOK, sh.srv.Discovery())
}

func (sh *smartHandler) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	sh.json(w, http.StatusOK, sh.srv.JWKS())
}

// authorize starts a login: GET with the request in the query, or POST
// with it in a form (SMART "authorize-post").
func (sh *smartHandler) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		f, err := postForm(w, r)
		if err != nil {
			sh.errorPage(w, r, http.StatusBadRequest, err.Error())
			return
		}
		q = f
	}
	page, err := sh.srv.Authorize(r.Context(), q)
	if err != nil {
		sh.authorizeFailed(w, r, err)
		return
	}
	sh.page(w, http.StatusOK, page)
}

// login takes the posted login form.
func (sh *smartHandler) login(w http.ResponseWriter, r *http.Request) {
	f, err := postForm(w, r)
	if err != nil {
		sh.errorPage(w, r, http.StatusBadRequest, err.Error())
		return
	}
	for k, v := range f {
		if len(v) > 1 {
			sh.errorPage(w, r, http.StatusBadRequest, "the form repeats "+k)
			return
		}
	}
	// The audit entry names who tried, never the password or the code.
	noteOf(r).setUser(strings.TrimSpace(f.Get("username")))
	res, err := sh.srv.Login(r.Context(), smart.LoginForm{
		Request:  f.Get("request"),
		Username: strings.TrimSpace(f.Get("username")),
		Password: f.Get("password"),
		TOTP:     strings.TrimSpace(f.Get("totp")),
		Role:     f.Get("role"),
	})
	if err != nil {
		sh.authorizeFailed(w, r, err)
		return
	}
	if res.User != "" {
		// Known from the first step on: the role step's form carries no
		// user name, and a success names the role chosen.
		noteOf(r).setWho(who{user: res.User, role: res.Role.Role, org: res.Role.Org, client: res.Client})
	}
	if res.Redirect != "" {
		noStore(w)
		http.Redirect(w, r, res.Redirect, http.StatusSeeOther)
		return
	}
	status := http.StatusOK
	if res.Failed {
		status = http.StatusUnauthorized
	}
	sh.page(w, status, res.Page)
}

// authorizeFailed shows or redirects an authorisation error.
func (sh *smartHandler) authorizeFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ae *smart.AuthorizeError
	if errors.As(err, &ae) {
		if ae.RedirectURI != "" {
			noStore(w)
			http.Redirect(w, r, ae.Redirect(), http.StatusSeeOther)
			return
		}
		sh.errorPage(w, r, http.StatusBadRequest, ae.Description)
		return
	}
	sh.serverError(r, err)
	status := http.StatusInternalServerError
	if fhir.IsKind(err, fhir.EUnavailable) {
		status = http.StatusServiceUnavailable
	}
	sh.errorPage(w, r, status, "The server could not complete the login. Try again later.")
}

// oidcStart sends the browser to the external identity provider.
func (sh *smartHandler) oidcStart(w http.ResponseWriter, r *http.Request) {
	to, err := sh.srv.StartOIDC(r.Context(), r.URL.Query().Get("request"))
	if err != nil {
		sh.authorizeFailed(w, r, err)
		return
	}
	noStore(w)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// oidcCallback takes the provider's answer and sends the browser back to
// the app.
func (sh *smartHandler) oidcCallback(w http.ResponseWriter, r *http.Request) {
	to, err := sh.srv.FinishOIDC(r.Context(), r.URL.Query())
	if err != nil {
		sh.authorizeFailed(w, r, err)
		return
	}
	noStore(w)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (sh *smartHandler) token(w http.ResponseWriter, r *http.Request) {
	f, err := postForm(w, r)
	if err != nil {
		sh.oauthError(w, r, &smart.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: err.Error()})
		return
	}
	n := noteOf(r)
	n.setWho(who{client: claimedClient(f)})
	resp, oerr := sh.srv.Token(r.Context(), f)
	if oerr != nil {
		sh.oauthError(w, r, oerr)
		return
	}
	// The entry names whom the token was issued to, as the token says,
	// never the token itself.
	p, err := sh.srv.Verify(r.Context(), resp.AccessToken)
	if err != nil {
		n.fail(err)
	} else {
		n.setWho(who{user: p.Subject, role: p.Role, org: p.Organisation, client: p.Client})
		if id, ok := strings.CutPrefix(p.Subject, "Patient/"); ok {
			n.addPatients(id)
		}
	}
	sh.json(w, http.StatusOK, resp)
}

func (sh *smartHandler) introspect(w http.ResponseWriter, r *http.Request) {
	f, caller, ok := sh.managementRequest(w, r)
	if !ok {
		return
	}
	out, oerr := sh.srv.Introspect(r.Context(), caller, f)
	if oerr != nil {
		sh.oauthError(w, r, oerr)
		return
	}
	sh.json(w, http.StatusOK, out)
}

func (sh *smartHandler) revoke(w http.ResponseWriter, r *http.Request) {
	f, caller, ok := sh.managementRequest(w, r)
	if !ok {
		return
	}
	// The entry names whose grant ends: the user, role and client of the
	// access token, or of the session the refresh token belongs to (else
	// the client that sent it).
	n := noteOf(r)
	n.setWho(who{client: claimedClient(f)})
	if tok := f.Get("token"); strings.Count(tok, ".") == 2 {
		if p, err := sh.srv.Verify(r.Context(), tok); err == nil {
			n.setWho(who{user: p.Subject, role: p.Role, org: p.Organisation, client: p.Client})
		}
	} else if user, role, client, ok := sh.srv.RefreshOwner(r.Context(), tok); ok {
		n.setWho(who{user: user, role: role.Role, org: role.Org, client: client})
	}
	if oerr := sh.srv.Revoke(r.Context(), caller, f); oerr != nil {
		sh.oauthError(w, r, oerr)
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}

// managementRequest parses an introspection or revocation request and its
// optional bearer token (the operator's or a system client's).
func (sh *smartHandler) managementRequest(w http.ResponseWriter, r *http.Request) (url.Values, *auth.Principal, bool) {
	f, err := postForm(w, r)
	if err != nil {
		sh.oauthError(w, r, &smart.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: err.Error()})
		return nil, nil, false
	}
	for k, v := range f {
		if len(v) > 1 {
			sh.oauthError(w, r, &smart.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "parameter " + k + " is repeated"})
			return nil, nil, false
		}
	}
	var caller *auth.Principal
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, tok, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			sh.oauthError(w, r, &smart.Error{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "only Bearer tokens are accepted"})
			return nil, nil, false
		}
		p, err := sh.srv.Verify(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			sh.oauthError(w, r, &smart.Error{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "the bearer token is not valid"})
			return nil, nil, false
		}
		caller = p
		stateOf(r).principal = p
	}
	return f, caller, true
}

// claimedClient is the client a token or revocation request says it comes
// from, for its audit entry: client_id, else the subject its client
// assertion claims (read, not verified: the entry of a refused request
// names whom it claimed to be). Never the assertion itself.
func claimedClient(f url.Values) string {
	if id := f.Get("client_id"); id != "" {
		return truncate(id)
	}
	parts := strings.Split(f.Get("client_assertion"), ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return truncate(c.Sub)
}

// postForm reads an application/x-www-form-urlencoded body of at most
// 64 KiB. Parameters in the query string are not read: OAuth puts
// credentials in the body only (RFC 6749 section 2.3.1).
func postForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errors.New("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("the form is malformed or too large")
	}
	return r.PostForm, nil
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func (sh *smartHandler) json(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	noStore(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// oauthError answers with an OAuth error; a failure of the server itself
// is logged (without the request's parameters) and shown as server_error.
func (sh *smartHandler) oauthError(w http.ResponseWriter, r *http.Request, e *smart.Error) {
	if e.Err != nil {
		sh.serverError(r, e.Err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sharedcare", error="invalid_client"`)
	}
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	sh.json(w, status, map[string]string{"error": e.Code, "error_description": e.Description})
}

func (sh *smartHandler) serverError(r *http.Request, err error) {
	sh.h.log.LogAttrs(r.Context(), slog.LevelError, "authorisation server error",
		slog.String("request_id", stateOf(r).id), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
}

// Pages. Plain HTML forms: they work without JavaScript, and a script logs
// in by posting the same fields (request, username, password, totp, role).

var pages = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sharedcare: log in</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
label{display:block;margin-top:.8rem}input[type=text],input[type=password]{width:100%;padding:.4rem;font-size:1rem}
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#a00;border-left:4px solid #a00;padding-left:.6rem}
fieldset{margin-top:1rem}</style></head><body>
{{define "error"}}<h1>Cannot log in</h1><p class="error" role="alert">{{.}}</p>{{end}}
{{define "login"}}<h1>Log in to sharedcare</h1>
<p><strong>{{.ClientName}}</strong> asks to use the shared care record on your behalf.</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/auth/login">
<input type="hidden" name="request" value="{{.Request}}">
{{if .Choose}}<fieldset><legend>Which role are you working in for this session?</legend>
{{range $i, $a := .Choose}}<label><input type="radio" name="role" value="{{$a.String}}"{{if eq $i 0}} checked{{end}}> {{$a.String}}</label>
{{end}}</fieldset>
{{else}}<label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<label for="totp">One-time code (if your account has one)</label><input type="text" id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}">
<label for="role">Role, as ORGANISATION:role (if you hold more than one; leave empty to choose next)</label><input type="text" id="role" name="role">
{{end}}<button type="submit">Continue</button>
</form>
{{if and .External (not .Choose)}}<p>Or <a href="/auth/oidc?request={{.Request}}">log in with {{.External}}</a>.</p>{{end}}
<details><summary>What the app asks for</summary><ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul></details>{{end}}
{{if .Login}}{{template "login" .Login}}{{else}}{{template "error" .Message}}{{end}}
</body></html>
`))

type pageData struct {
	Login   *smart.LoginPage
	Message string
}

func htmlHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No scripts at all, no framing (clickjacking of the login form), no
	// referrer carrying the request id to other sites. No form-action: a
	// browser would apply it to the redirect back to the app.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	noStore(w)
}

func (sh *smartHandler) page(w http.ResponseWriter, status int, p *smart.LoginPage) {
	htmlHeaders(w)
	w.WriteHeader(status)
	pages.Execute(w, pageData{Login: p})
}

func (sh *smartHandler) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	htmlHeaders(w)
	w.WriteHeader(status)
	pages.Execute(w, pageData{Message: msg})
}
