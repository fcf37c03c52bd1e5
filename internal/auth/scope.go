package auth

import "strings"

// The SMART scope grammar as far as the authorisation server needs it: to
// check a client's registered maximum, and to cut a request down to what
// the client and the caller's kind allow when a token is issued. What a
// scope then permits on each request (and how it meets the role) is the
// access layer's decision; the token carries the scopes granted here.

// Non-resource scopes the server grants. openid and fhirUser are not among
// them: the server issues no id_token (no OpenID Connect), so granting
// them would promise what the response does not hold.
const (
	ScopeOfflineAccess = "offline_access" // a refresh token that outlives the session
	ScopeOnlineAccess  = "online_access"  // a refresh token for the session only
	// ScopeLaunchPatient asks for a patient context: granted to patients
	// and proxies (their own, or the person they act for); staff have no
	// patient picker, so it is dropped for them.
	ScopeLaunchPatient = "launch/patient"
)

// ResourceScope is one SMART resource scope: context/Type.perms.
type ResourceScope struct {
	Context string // patient, user or system
	Type    string // a resource type or "*"
	Perms   string // a non-empty subset of "cruds", in that order
}

func (s ResourceScope) String() string { return s.Context + "/" + s.Type + "." + s.Perms }

// ParseResourceScope parses a SMART v2 resource scope or a v1 one (.read is
// "rs", .write "cud", .* "cruds"). Scopes with a v2 query
// (patient/Observation.rs?category=x) are refused: nothing enforces the
// query, so granting the scope would grant more than was asked.
func ParseResourceScope(s string) (ResourceScope, bool) {
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return ResourceScope{}, false
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok || !validScopeType(typ) {
		return ResourceScope{}, false
	}
	switch perms {
	case "read":
		perms = "rs"
	case "write":
		perms = "cud"
	case "*":
		perms = "cruds"
	default:
		last := -1
		for _, c := range perms {
			i := strings.IndexRune("cruds", c)
			if i <= last {
				return ResourceScope{}, false
			}
			last = i
		}
		if perms == "" {
			return ResourceScope{}, false
		}
	}
	return ResourceScope{Context: ctx, Type: typ, Perms: perms}, true
}

func validScopeType(t string) bool {
	if t == "*" {
		return true
	}
	if t == "" || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidScope reports whether s is a scope the server can grant: a resource
// scope or one of the non-resource scopes above.
func ValidScope(s string) bool {
	switch s {
	case ScopeOfflineAccess, ScopeOnlineAccess, ScopeLaunchPatient:
		return true
	}
	_, ok := ParseResourceScope(s)
	return ok
}

// GrantScopes cuts the requested scopes down to what max (a client's
// registered maximum) covers, keeping only resource scopes of the given
// context (patient, user or system: the caller's kind decides it) and the
// non-resource scopes max lists verbatim. The result is in v2 form, each
// scope once, in the order requested. A requested "*" type is granted as
// "*" only where max grants "*", and as the types max names otherwise.
func GrantScopes(requested, max []string, context string) []string {
	anyPerms := ""
	byType := map[string]string{}
	var types []string
	for _, m := range max {
		ms, ok := ParseResourceScope(m)
		if !ok || ms.Context != context {
			continue
		}
		if ms.Type == "*" {
			anyPerms = permUnion(anyPerms, ms.Perms)
			continue
		}
		if _, seen := byType[ms.Type]; !seen {
			types = append(types, ms.Type)
		}
		byType[ms.Type] = permUnion(byType[ms.Type], ms.Perms)
	}
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range requested {
		rs, ok := ParseResourceScope(r)
		if !ok {
			if ValidScope(r) {
				for _, m := range max {
					if m == r {
						add(r)
					}
				}
			}
			continue
		}
		if rs.Context != context {
			continue
		}
		if rs.Type != "*" {
			if p := permIntersect(rs.Perms, permUnion(anyPerms, byType[rs.Type])); p != "" {
				add(ResourceScope{context, rs.Type, p}.String())
			}
			continue
		}
		wild := permIntersect(rs.Perms, anyPerms)
		if wild != "" {
			add(ResourceScope{context, "*", wild}.String())
		}
		for _, t := range types {
			// Only what the named type adds to the wildcard.
			if p := permIntersect(rs.Perms, byType[t]); p != "" && permUnion(p, wild) != wild {
				add(ResourceScope{context, t, permUnion(p, wild)}.String())
			}
		}
	}
	return out
}

func permUnion(a, b string) string {
	var out []byte
	for _, c := range []byte("cruds") {
		if strings.IndexByte(a, c) >= 0 || strings.IndexByte(b, c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out)
}

func permIntersect(a, b string) string {
	var out []byte
	for _, c := range []byte("cruds") {
		if strings.IndexByte(a, c) >= 0 && strings.IndexByte(b, c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out)
}
