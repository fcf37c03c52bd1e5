package engine

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Page sizes for search and history (_count): a default when the client
// gives none and a cap so that one request cannot ask for the whole store.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// searchSpec is a parsed search: the store query plus what the engine must
// report about the request.
type searchSpec struct {
	q       store.Query
	used    url.Values // the parameters honoured, for the self link
	ignored []string   // unknown parameters ignored under lenient handling
	count   int        // requested page size; 0 means only the total
}

// resultParams are FHIR's search result and control parameters that this
// engine does not implement yet: asking for them is an error, never a
// silently wider or differently shaped result.
var resultParams = map[string]bool{
	"_sort": true, "_include": true, "_revinclude": true, "_elements": true, "_summary": true,
	"_contained": true, "_containedType": true, "_has": true, "_text": true, "_content": true,
	"_list": true, "_query": true, "_filter": true, "_lastUpdated": true, "_profile": true,
	"_security": true, "_tag": true, "_source": true, "_score": true,
}

// apiParams are handled by the HTTP layer (response format), not by search.
var apiParams = map[string]bool{"_format": true, "_pretty": true}

var (
	knownParamsOnce sync.Once
	knownParams     map[string]bool // every R4 search parameter name of any type
)

func knownParam(typ, name string) bool {
	if typ != "" {
		_, ok := r4.SearchParams(typ)[name]
		return ok
	}
	knownParamsOnce.Do(func() {
		knownParams = map[string]bool{}
		for _, t := range r4.ResourceTypes() {
			for n := range r4.SearchParams(t) {
				knownParams[n] = true
			}
		}
	})
	return knownParams[name]
}

// parseSearch turns URL parameters into a store query for typ ("" for a
// system-level search). With conditional set it parses the criteria of a
// conditional interaction: then every parameter must be understood exactly
// and at least one criterion given, because a criterion ignored would make
// the match wider than the client asked for.
func parseSearch(typ string, v url.Values, strict, conditional bool) (*searchSpec, error) {
	s := &searchSpec{used: url.Values{}, count: DefaultCount}
	if typ != "" {
		s.q.Types = []string{typ}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic errors and outcome issues
	// _type first: the parameters that follow are checked against its types.
	if typ == "" {
		for _, val := range v["_type"] {
			for t := range strings.SplitSeq(val, ",") {
				t = strings.TrimSpace(t)
				if t == "" {
					continue
				}
				if !r4.IsResource(t) {
					return nil, fhir.Invalid("", "_type: unknown resource type %q", trunc(t))
				}
				if !slices.Contains(s.q.Types, t) {
					s.q.Types = append(s.q.Types, t)
				}
			}
			s.used.Add("_type", val)
		}
	}
	criteria := 0
	for _, full := range names {
		name, modifier, hasMod := strings.Cut(full, ":")
		vals := v[full]
		if name == "_type" && typ == "" {
			continue
		}
		if apiParams[full] {
			continue
		}
		if conditional && strings.HasPrefix(name, "_") && name != "_id" {
			return nil, fhir.Invalid("", "parameter %q cannot be used in the criteria of a conditional interaction", trunc(full))
		}
		switch {
		case name == "_count" && !hasMod:
			n, err := strconv.Atoi(last(vals))
			if err != nil || n < 0 {
				return nil, fhir.Invalid("", "_count must be a non-negative integer, not %q", trunc(last(vals)))
			}
			s.count = min(n, MaxCount)
			s.used.Set("_count", strconv.Itoa(s.count))
		case name == "_total" && !hasMod:
			switch t := last(vals); t {
			case "accurate", "estimate":
				s.q.Total = true
				s.used.Set("_total", t)
			case "none":
			default:
				return nil, fhir.Invalid("", "_total must be none, estimate or accurate, not %q", trunc(t))
			}
		case name == "_cursor" && !hasMod:
			s.q.Cursor = last(vals)
		case name == "_id" || supportedToken(s.q.Types, name):
			if hasMod {
				return nil, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q: modifier :%s is not supported", name, trunc(modifier))
			}
			for _, val := range vals {
				if val == "" { // FHIR search.html: a parameter with an empty value is ignored
					continue
				}
				c, err := parseClause(name, val)
				if err != nil {
					return nil, err
				}
				s.q.Clauses = append(s.q.Clauses, c)
				s.used.Add(full, val)
				criteria++
			}
		case resultParams[name] || knownParam(typ, name):
			return nil, fhir.Errorf(fhir.ENotSupported, "", "search parameter %q is not supported by this server", trunc(full))
		default:
			if strict || conditional {
				return nil, fhir.Invalid("", "unknown search parameter %q", trunc(full))
			}
			s.ignored = append(s.ignored, full)
		}
	}
	if conditional && criteria == 0 {
		return nil, fhir.Invalid("", "a conditional interaction needs at least one search criterion")
	}
	return s, nil
}

// supportedToken reports whether name is a token parameter the index serves
// on every one of types (or, for a search over all types, on some type: the
// index holds rows for it only where it is defined).
func supportedToken(types []string, name string) bool {
	if len(types) == 0 {
		for _, t := range r4.ResourceTypes() {
			if supportedTokenParam(t, name) {
				return true
			}
		}
		return false
	}
	for _, t := range types {
		if !supportedTokenParam(t, name) {
			return false
		}
	}
	return true
}

func last(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[len(vals)-1]
}

// parseClause parses one parameter value: comma-separated alternatives (OR),
// with FHIR's escapes \, \| \$ and \\.
func parseClause(name, val string) (store.Clause, error) {
	var c store.Clause
	for _, alt := range splitEscaped(val, ',') {
		if name == "_id" {
			c = append(c, store.Cond{Kind: store.CondID, Code: unescape(alt)})
			continue
		}
		parts := splitEscaped(alt, '|')
		cond := store.Cond{Kind: store.CondToken, Param: name}
		switch len(parts) {
		case 1:
			cond.Code, cond.AnySystem = unescape(parts[0]), true
		case 2:
			cond.System, cond.Code = unescape(parts[0]), unescape(parts[1])
			if cond.System == "" && cond.Code == "" {
				return nil, fhir.Invalid("", "search parameter %q: %q is not a token", name, trunc(val))
			}
			if cond.Code == "" {
				cond.AnyCode = true
			}
		default:
			return nil, fhir.Invalid("", "search parameter %q: %q is not a token (system|code)", name, trunc(val))
		}
		if cond.Code == "" && cond.AnySystem {
			continue // an empty alternative matches nothing more
		}
		c = append(c, cond)
	}
	if len(c) == 0 {
		return nil, fhir.Invalid("", "search parameter %q has no value", name)
	}
	return c, nil
}

// splitEscaped splits s at each sep not escaped by a backslash, keeping the
// escapes for unescape.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Search runs a type-level (typ set) or system-level (typ "") search and
// returns a searchset Bundle. Parameters it does not know are ignored under
// lenient handling (the default) and reported in an OperationOutcome entry
// with search.mode "outcome"; under strict handling (WithHandling) they are
// a 400. Parameters it knows but does not implement are always an error, so
// a result is never wider than asked.
func (e *Engine) Search(ctx context.Context, typ string, q url.Values) (fhir.Object, error) {
	if typ != "" {
		if err := checkType(typ); err != nil {
			return nil, err
		}
	}
	s, err := parseSearch(typ, q, strictHandling(ctx), false)
	if err != nil {
		return nil, err
	}
	if s.count == 0 {
		// _count=0 asks for the number of matches only (FHIR search.html).
		s.q.Total = true
	}
	s.q.Count = max(s.count, 1)
	res, err := e.st.Search(ctx, &s.q)
	if err != nil {
		return nil, err
	}
	base := e.cfg.BaseURL
	if typ != "" {
		base += "/" + typ
	}
	links := []any{fhir.Object{"relation": "self", "url": linkURL(base, s.used, s.q.Cursor)}}
	var entries []any
	if s.count > 0 {
		entries = make([]any, 0, len(res.Versions)+1)
		for _, v := range res.Versions {
			entries = append(entries, fhir.Object{
				"fullUrl":  e.fullURL(v.Type, v.ID),
				"resource": json.RawMessage(v.Body),
				"search":   fhir.Object{"mode": "match"},
			})
		}
		if res.Next != "" {
			links = append(links, fhir.Object{"relation": "next", "url": linkURL(base, s.used, res.Next)})
		}
	} else {
		entries = []any{}
	}
	if len(s.ignored) > 0 {
		issues := make([]fhir.Issue, len(s.ignored))
		for i, p := range s.ignored {
			issues[i] = fhir.Issue{Severity: fhir.SeverityWarning, Code: "not-supported",
				Diagnostics: "unknown search parameter " + strconv.Quote(p) + " was ignored"}
		}
		entries = append(entries, fhir.Object{
			"resource": fhir.OutcomeOf(issues...),
			"search":   fhir.Object{"mode": "outcome"},
		})
	}
	b := fhir.Object{"resourceType": "Bundle", "type": "searchset", "link": links}
	if res.Total >= 0 && s.q.Total {
		b["total"] = res.Total
	}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	return b, nil
}

// linkURL is an absolute paging link: base, the honoured parameters and the
// page cursor.
func linkURL(base string, used url.Values, cursor string) string {
	v := used
	if cursor != "" {
		v = url.Values{}
		for k, vals := range used {
			v[k] = vals
		}
		v.Set("_cursor", cursor)
	}
	if len(v) == 0 {
		return base
	}
	return base + "?" + v.Encode()
}

func (e *Engine) fullURL(typ, id string) string {
	return e.cfg.BaseURL + "/" + typ + "/" + id
}

// matchOne runs the criteria of a conditional interaction inside tx and
// returns the matches (at most two: enough to tell one from many).
func matchConditional(ctx context.Context, tx store.Tx, typ string, q url.Values) ([]*store.Version, error) {
	s, err := parseSearch(typ, q, true, true)
	if err != nil {
		return nil, err
	}
	s.q.Count = 2
	res, err := tx.Search(ctx, &s.q)
	if err != nil {
		return nil, err
	}
	return res.Versions, nil
}

// parseConditional parses a conditional query string (If-None-Exist, a
// conditional reference or a bundle entry's url after the "?").
func parseConditional(raw string) (url.Values, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fhir.Invalid("", "malformed search criteria %q", trunc(raw))
	}
	return v, nil
}
