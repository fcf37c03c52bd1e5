// Package auth says who is making a request. It issues and verifies the
// access tokens a node signs with its own key, and carries the verified
// caller (a Principal) in the request context for the layers below.
//
// The node signs every access token itself (Authority), whoever asked for
// it: the operator's full-access token of "sharedcare admin-token", a user
// who logged in through an app, a system client of SMART Backend Services.
// A Principal carries what the access model needs (issue 6): SMART v2
// scopes, a kind (admin, user, system, patient), the organisation (ODS
// code and type) and the one role selected for the session, the client,
// the patient of a patient or proxy token, and the token and session ids
// for revocation. The access layer reads the Principal, never the token.
//
// Subpackage smart is the authorisation server that decides who gets a
// token; this package holds what it and the verifier share: tokens,
// password hashes, TOTP codes and the scope grammar.
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
	// Subject is who the access model sees: a staff user's login name, a
	// system client's id, "admin", and for patients and proxies the FHIR
	// resource they are ("Patient/x", "RelatedPerson/y").
	Subject      string
	User         string   // the login name of a person (staff, patient or proxy); "" for systems and the operator
	Kind         Kind     // admin, user, system or patient
	Scopes       []string // SMART v2 scopes, e.g. "system/*.cruds", "patient/Observation.rs"
	Organisation string   // ODS code of the organisation the caller acts for ("" for patients and proxies)
	// OrganisationType is the type of Organisation as the directory records
	// it (a region organisation type such as "gp-practice"), for the
	// information sharing agreements.
	OrganisationType string
	Role             string // the one role selected for this session (a policy role name; "system" for system clients)
	Client           string // the client_id of the app or system the token was issued to ("" for admin tokens)
	// Patient is the id of the Patient a patient or proxy token is about
	// (SMART's launch context "patient"); "" for other kinds.
	Patient string
	// FHIRUser is the FHIR resource the user is, when the directory knows
	// it: "Patient/x", "RelatedPerson/y" (a proxy), "Practitioner/z".
	FHIRUser string
	Session  string    // the grant (login or refresh chain) the token belongs to; revoking it ends every token of the grant
	TokenID  string    // the token's jti, so that a revoked token can be refused
	IssuedAt time.Time // when the token was issued
	Expires  time.Time // when the token stops being valid
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
