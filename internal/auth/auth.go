// Package auth says who is making a request. It issues and verifies the
// access tokens a node signs with its own key, and carries the verified
// caller (a Principal) in the request context for the layers below.
//
// Today the node issues one kind of token, the short-lived full-access
// token of "sharedcare admin-token" (issue 2). The shape is built for the
// access model of issue 6: a Principal already carries SMART v2 scopes, a
// kind (admin, user, system, patient), an organisation (ODS code) and a
// selected role, and the token id for revocation; further issuers (SMART
// Backend Services clients, an OpenID Connect provider) become further
// verifiers behind the same Verify method, and the engine's access filter
// will read the Principal, never the token.
package auth

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Kind is what sort of caller a principal is. Issue 6 gives each kind
// different rules (patients and system clients can never break glass).
type Kind string

// Principal kinds.
const (
	KindAdmin   Kind = "admin"   // the node operator's full-access token
	KindUser    Kind = "user"    // a person working in a role at an organisation
	KindSystem  Kind = "system"  // a system-to-system client (SMART Backend Services)
	KindPatient Kind = "patient" // a person looking at their own record, or a proxy
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindAdmin, KindUser, KindSystem, KindPatient:
		return true
	}
	return false
}

// Principal is a verified caller. It is immutable once verified: the
// verifier may hand the same value to many requests.
type Principal struct {
	Subject      string    // who: a user name, client id or "admin"
	Kind         Kind      // admin, user, system or patient
	Scopes       []string  // SMART v2 scopes, e.g. "system/*.cruds", "patient/Observation.rs"
	Organisation string    // ODS code of the organisation the caller acts for; empty until issue 6
	Role         string    // the selected role at that organisation; empty until issue 6
	TokenID      string    // the token's jti, so that a revoked token can be refused (issue 6)
	Expires      time.Time // when the token stops being valid
}

// HasScope reports whether the principal was granted exactly scope s.
// Matching of wildcards and permissions is the access model's job (issue 6).
func (p *Principal) HasScope(s string) bool {
	return p != nil && slices.Contains(p.Scopes, s)
}

// String names the principal for logs without revealing anything secret.
func (p *Principal) String() string {
	if p == nil {
		return "anonymous"
	}
	return string(p.Kind) + ":" + p.Subject
}

// FullAccessScope is the scope of the admin token: every resource type,
// every interaction (SMART v2: create, read, update, delete, search).
const FullAccessScope = "system/*.cruds"

// ScopeString joins scopes as a token's "scope" claim does.
func ScopeString(scopes []string) string { return strings.Join(scopes, " ") }

type ctxKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of the request, if one was verified.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok && p != nil
}
