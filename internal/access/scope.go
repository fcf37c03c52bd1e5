package access

import (
	"slices"
	"strings"
)

// Interactions as SMART v2 permission letters.
const (
	OpCreate = 'c'
	OpRead   = 'r'
	OpUpdate = 'u'
	OpDelete = 'd'
	OpSearch = 's'
)

// Scope is one parsed SMART resource scope: context/Type.perms.
type Scope struct {
	Context string // patient, user or system
	Type    string // a resource type or "*"
	Perms   string // a subset of "cruds", in that order
}

// String writes the scope in SMART v2 form.
func (s Scope) String() string { return s.Context + "/" + s.Type + "." + s.Perms }

// ParseScope parses a SMART v2 resource scope, or a v1 one (.read is "rs",
// .write is "cud", .* is "cruds"). ok is false for anything else: launch
// and identity scopes, malformed text, and v2 scopes with a query
// (patient/Observation.rs?category=...), which sharedcare does not
// enforce and so does not honour (deny by default).
func ParseScope(s string) (sc Scope, ok bool) {
	ctx, rest, found := strings.Cut(s, "/")
	if !found || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return Scope{}, false
	}
	typ, perms, found := strings.Cut(rest, ".")
	if !found || typ == "" || strings.ContainsAny(perms, "?&=") {
		return Scope{}, false
	}
	if typ != "*" && !validTypeName(typ) {
		return Scope{}, false
	}
	switch perms {
	case "read":
		perms = "rs"
	case "write":
		perms = "cud"
	case "*":
		perms = "cruds"
	default:
		// v2: letters in the order c, r, u, d, s, each at most once.
		last := -1
		for _, c := range perms {
			i := strings.IndexRune("cruds", c)
			if i <= last {
				return Scope{}, false
			}
			last = i
		}
		if perms == "" {
			return Scope{}, false
		}
	}
	return Scope{Context: ctx, Type: typ, Perms: perms}, true
}

func validTypeName(t string) bool {
	if t[0] < 'A' || t[0] > 'Z' {
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

// Scopes is the set of permissions a token's scopes grant in one context.
type Scopes struct {
	any    string            // letters granted on "*"
	byType map[string]string // letters granted per type
}

// GrantedScopes collects the scopes of context ctx (patient, user or system)
// from a token's scope list; scopes of other contexts grant nothing.
func GrantedScopes(ctx string, scopes []string) Scopes {
	g := Scopes{byType: map[string]string{}}
	for _, s := range scopes {
		sc, ok := ParseScope(s)
		if !ok || sc.Context != ctx {
			continue
		}
		if sc.Type == "*" {
			g.any = union(g.any, sc.Perms)
		} else {
			g.byType[sc.Type] = union(g.byType[sc.Type], sc.Perms)
		}
	}
	return g
}

// Allows reports whether op on typ is granted.
func (g Scopes) Allows(typ string, op rune) bool {
	return strings.ContainsRune(g.any, op) || strings.ContainsRune(g.byType[typ], op)
}

// Filter keeps the types on which op is granted.
func (g Scopes) Filter(types []string, op rune) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if g.Allows(t, op) {
			out = append(out, t)
		}
	}
	return out
}

// IntersectScopes returns the requested scopes cut down to what max (a
// client's registered maximum) allows, in SMART v2 form. A requested scope
// that max does not cover at all is dropped; non-resource scopes (openid,
// launch, offline_access...) are kept only if max lists them verbatim.
func IntersectScopes(requested, max []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range requested {
		rs, ok := ParseScope(r)
		if !ok {
			for _, m := range max {
				if m == r {
					add(r)
				}
			}
			continue
		}
		g := GrantedScopes(rs.Context, max)
		if rs.Type == "*" {
			if p := intersect(rs.Perms, g.any); p != "" {
				add(Scope{rs.Context, "*", p}.String())
			}
			ts := make([]string, 0, len(g.byType))
			for t := range g.byType {
				ts = append(ts, t)
			}
			slices.Sort(ts)
			for _, t := range ts {
				mp := g.byType[t]
				if p := intersect(rs.Perms, union(mp, g.any)); p != "" && p != intersect(rs.Perms, g.any) {
					add(Scope{rs.Context, t, p}.String())
				}
			}
			continue
		}
		if p := intersect(rs.Perms, union(g.any, g.byType[rs.Type])); p != "" {
			add(Scope{rs.Context, rs.Type, p}.String())
		}
	}
	return out
}

// union and intersect work on permission strings, keeping "cruds" order.
func union(a, b string) string {
	var out []byte
	for _, c := range []byte("cruds") {
		if strings.IndexByte(a, c) >= 0 || strings.IndexByte(b, c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out)
}

func intersect(a, b string) string {
	var out []byte
	for _, c := range []byte("cruds") {
		if strings.IndexByte(a, c) >= 0 && strings.IndexByte(b, c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out)
}
