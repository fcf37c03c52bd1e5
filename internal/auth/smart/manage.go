package smart

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
)

// Token introspection (RFC 7662) and revocation (RFC 7009).

// callerClient authenticates whoever calls introspection or revocation:
// the node operator's bearer token (caller of kind admin), a system
// client's bearer token, or client authentication in the form. It returns
// the client ("" for the operator) and whether the caller may see any
// client's tokens.
func (s *Server) callerClient(ctx context.Context, caller *auth.Principal, form url.Values, allowPublic bool) (string, bool, *Error) {
	if caller != nil {
		switch caller.Kind {
		case auth.KindAdmin:
			return "", true, nil
		case auth.KindSystem:
			return caller.Client, true, nil
		}
		return "", false, oauthErr("invalid_client", "only the node operator or a system client may call this with a bearer token")
	}
	c, err := s.authenticateClient(ctx, form)
	if err != nil {
		return "", false, err
	}
	if c.Type == directory.Public && !allowPublic {
		return "", false, oauthErr("invalid_client", "a public client may not introspect tokens")
	}
	// A resource server (system client) may introspect any token; an app
	// only its own.
	return c.ID, c.Type == directory.System, nil
}

// Introspect answers an introspection request. caller is the verified
// bearer of the request, nil when it had none.
func (s *Server) Introspect(ctx context.Context, caller *auth.Principal, form url.Values) (map[string]any, *Error) {
	client, all, oerr := s.callerClient(ctx, caller, form, false)
	if oerr != nil {
		return nil, oerr
	}
	tok := form.Get("token")
	if tok == "" {
		return nil, oauthErr("invalid_request", "token is required")
	}
	inactive := map[string]any{"active": false}
	if strings.Count(tok, ".") == 2 {
		p, err := s.Verify(ctx, tok)
		if err != nil || !all && p.Client != client {
			return inactive, nil
		}
		out := map[string]any{
			"active":     true,
			"token_type": "Bearer",
			"scope":      auth.ScopeString(p.Scopes),
			"sub":        p.Subject,
			"iss":        s.a.Issuer(),
			"aud":        s.a.Issuer(),
			"exp":        p.Expires.Unix(),
			"iat":        p.IssuedAt.Unix(),
			"jti":        p.TokenID,
			"kind":       string(p.Kind),
		}
		if p.User != "" {
			out["username"] = p.User
		}
		for k, v := range map[string]string{"client_id": p.Client, "patient": p.Patient, "fhirUser": p.FHIRUser,
			"organization": p.Organisation, "organization_type": p.OrganisationType, "role": p.Role, "sid": p.Session} {
			if v != "" {
				out[k] = v
			}
		}
		return out, nil
	}
	sid, secret, ok := strings.Cut(tok, ".")
	if !ok {
		return inactive, nil
	}
	var sess session
	v, err := s.getJSON(ctx, bucketSessions, sid, &sess)
	if err != nil {
		return nil, serverErr(err)
	}
	if v == 0 || sess.Refresh != hashKey(secret) || s.a.Now().After(sess.Expires) || !all && sess.Client != client {
		return inactive, nil
	}
	return map[string]any{
		"active":     true,
		"token_type": "refresh_token",
		"scope":      auth.ScopeString(sess.Scopes),
		"client_id":  sess.Client,
		"username":   sess.User,
		"sub":        sess.User,
		"exp":        sess.Expires.Unix(),
		"role":       sess.Role.Role,
	}, nil
}

// Revoke answers a revocation request. Revoking an access token or a
// refresh token ends the whole grant it belongs to: the session's refresh
// token and every access token issued in it. An unknown, expired or
// malformed token is not an error (RFC 7009 section 2.2).
func (s *Server) Revoke(ctx context.Context, caller *auth.Principal, form url.Values) *Error {
	client, all, oerr := s.callerClient(ctx, caller, form, true)
	if oerr != nil {
		return oerr
	}
	tok := form.Get("token")
	if tok == "" {
		return oauthErr("invalid_request", "token is required")
	}
	if strings.Count(tok, ".") == 2 {
		p, err := s.a.Verify(ctx, tok)
		if err != nil {
			return nil
		}
		if !all && p.Client != client {
			return oauthErr("unauthorized_client", "the token was issued to another client")
		}
		if err := s.revoked.revoke(ctx, "jti:"+p.TokenID, p.Expires.Add(auth.Leeway+time.Second)); err != nil {
			return serverErr(err)
		}
		if p.Session != "" {
			if err := s.endSession(ctx, p.Session); err != nil {
				return serverErr(err)
			}
		}
		return nil
	}
	sid, sess, err := s.refreshSession(ctx, tok)
	if err != nil {
		return serverErr(err)
	}
	if sess == nil {
		return nil
	}
	if !all && sess.Client != client {
		return oauthErr("unauthorized_client", "the token was issued to another client")
	}
	if err := s.endSession(ctx, sid); err != nil {
		return serverErr(err)
	}
	return nil
}

// refreshSession finds the live session a refresh token (current or
// spent) belongs to: nil when tok is none.
func (s *Server) refreshSession(ctx context.Context, tok string) (string, *session, error) {
	sid, secret, ok := strings.Cut(tok, ".")
	if !ok {
		return "", nil, nil
	}
	var sess session
	v, err := s.getJSON(ctx, bucketSessions, sid, &sess)
	if err != nil {
		return "", nil, err
	}
	if h := hashKey(secret); v == 0 || sess.Refresh != h && !slices.Contains(sess.Spent, h) {
		return "", nil, nil
	}
	return sid, &sess, nil
}

// RefreshOwner names whose session a refresh token (current or spent)
// belongs to: the user, the role they chose and the app, for the audit
// entry of its revocation. ok is false when tok is no refresh token of a
// live session.
func (s *Server) RefreshOwner(ctx context.Context, tok string) (user string, role directory.Assignment, client string, ok bool) {
	_, sess, err := s.refreshSession(ctx, tok)
	if err != nil || sess == nil {
		return "", role, "", false
	}
	return sess.User, sess.Role, sess.Client, true
}
