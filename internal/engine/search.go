package engine

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/search"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Page sizes for search and history (_count): a default when the client
// gives none and a cap so that one request cannot ask for the whole store.
const (
	DefaultCount = search.DefaultCount
	MaxCount     = search.MaxCount
)

// searchSpec is a parsed search: the store query plus what the engine must
// report about the request.
type searchSpec struct {
	q       store.Query
	used    url.Values // the parameters honoured, for the self link
	ignored []string   // unknown parameters ignored under lenient handling
	count   int        // requested page size; 0 means only the total
	req     *search.Request
}

// parseSearch turns URL parameters into a store query for typ ("" for a
// system-level search). With conditional set it parses the criteria of a
// conditional interaction: then every parameter must be understood exactly
// and at least one criterion given, because a criterion ignored would make
// the match wider than the client asked for.
func parseSearch(typ string, v url.Values, strict, conditional bool) (*searchSpec, error) {
	req, err := search.Parse(typ, v, search.Options{Strict: strict, Conditional: conditional})
	if err != nil {
		return nil, err
	}
	return &searchSpec{q: req.Query, used: req.Used, ignored: req.Ignored, count: req.Count, req: req}, nil
}

type accessKey struct{}

// WithAccess returns a context whose searches, reads and $everything see
// only the resources f lets through: the store applies f inside its queries
// to matches, includes, revincludes, chains, _has, totals and paging alike
// (issue 6 builds its access rules on it). A nil f lifts no restriction set
// by an outer context; it means "no filter" only where none was set.
func WithAccess(ctx context.Context, f *store.Filter) context.Context {
	return context.WithValue(ctx, accessKey{}, f)
}

func accessFilter(ctx context.Context) *store.Filter {
	f, _ := ctx.Value(accessKey{}).(*store.Filter)
	return f
}

type readAccessKey struct{}

// WithReadAccess returns a context whose reads by id (read, vread and
// instance history, in a bundle or not) see only what f lets through,
// whatever WithAccess sets for searches: a batch's GET entries read with
// the caller's read permission and search with their search permission,
// as the same requests made one by one are decided.
func WithReadAccess(ctx context.Context, f *store.Filter) context.Context {
	return context.WithValue(ctx, readAccessKey{}, f)
}

// readAccessFilter is the filter of reads by id: WithReadAccess's when
// set, else WithAccess's.
func readAccessFilter(ctx context.Context) *store.Filter {
	if f, ok := ctx.Value(readAccessKey{}).(*store.Filter); ok && f != nil {
		return f
	}
	return accessFilter(ctx)
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
	req, err := e.parse(ctx, typ, q)
	if err != nil {
		return nil, err
	}
	base := e.cfg.BaseURL
	if typ != "" {
		base += "/" + typ
	}
	return e.runSearch(ctx, req, base)
}

// CompartmentSearch searches resources of typ ("*" or "" for every type in
// the compartment) in the compartment of Patient/id
// (GET /Patient/id/Observation), per the R4 Patient CompartmentDefinition.
func (e *Engine) CompartmentSearch(ctx context.Context, ctype, id, typ string, q url.Values) (fhir.Object, error) {
	if ctype != "Patient" {
		return nil, fhir.Errorf(fhir.ENotSupported, "", "only the Patient compartment is supported, not %q", trunc(ctype))
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	var types []string
	if typ == "" || typ == "*" {
		types = compartmentTypes()
	} else {
		if err := checkType(typ); err != nil {
			return nil, err
		}
		if typ != "Patient" && r4.PatientCompartment(typ) == nil {
			return nil, fhir.Invalid("", "%s is not in the Patient compartment", typ)
		}
		types = []string{typ}
	}
	qt := typ
	if len(types) > 1 {
		qt = ""
	}
	req, err := e.parse(ctx, qt, q)
	if err != nil {
		return nil, err
	}
	if len(types) > 1 {
		req.Query.Types = intersectTypes(req.Query.Types, types)
	}
	req.Query.Clauses = append(req.Query.Clauses, store.Clause{{Kind: store.CondCompartment, RefType: "Patient", RefID: id}})
	return e.runSearch(ctx, req, e.cfg.BaseURL+"/Patient/"+id+"/"+typ)
}

// compartmentTypes lists the resource types of the Patient compartment.
func compartmentTypes() []string {
	out := []string{"Patient"}
	for _, t := range r4.ResourceTypes() {
		if t != "Patient" && r4.PatientCompartment(t) != nil {
			out = append(out, t)
		}
	}
	return out
}

// intersectTypes returns the types of want that are in have (all of want
// when have is empty: no restriction).
func intersectTypes(have, want []string) []string {
	if len(have) == 0 {
		return want
	}
	var out []string
	for _, t := range want {
		if slices.Contains(have, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return []string{"-"} // no type matches: an impossible type keeps the result empty, never wider
	}
	return out
}

func (e *Engine) parse(ctx context.Context, typ string, q url.Values) (*search.Request, error) {
	return search.Parse(typ, q, search.Options{Strict: strictHandling(ctx), Base: e.cfg.BaseURL, Now: e.cfg.Now()})
}

// runSearch runs req against the store with the context's access filter
// and builds the searchset Bundle, links under linkBase.
func (e *Engine) runSearch(ctx context.Context, req *search.Request, linkBase string) (fhir.Object, error) {
	if req.Count == 0 {
		// _count=0 or _summary=count asks for the number of matches only
		// (FHIR search.html).
		req.Query.Total = true
	}
	req.Query.Count = max(req.Count, 1)
	req.Query.Filter = accessFilter(ctx)
	if req.Count == 0 {
		req.Query.Include, req.Query.RevInclude = nil, nil
	}
	res, err := e.st.Search(ctx, &req.Query)
	if err != nil {
		return nil, err
	}
	links := []any{fhir.Object{"relation": "self", "url": linkURL(linkBase, req.Used, req.Query.Cursor)}}
	if req.Query.Cursor != "" || res.Next != "" {
		links = append(links, fhir.Object{"relation": "first", "url": linkURL(linkBase, req.Used, "")})
	}
	var entries []any
	if req.Count > 0 {
		entries = make([]any, 0, len(res.Versions)+len(res.Included)+1)
		for _, v := range res.Versions {
			en, err := e.entry(v, "match", req)
			if err != nil {
				return nil, err
			}
			entries = append(entries, en)
		}
		for _, v := range res.Included {
			en, err := e.entry(v, "include", req)
			if err != nil {
				return nil, err
			}
			entries = append(entries, en)
		}
		if res.Prev != "" {
			links = append(links, fhir.Object{"relation": "previous", "url": linkURL(linkBase, req.Used, res.Prev)})
		}
		if res.Next != "" {
			links = append(links, fhir.Object{"relation": "next", "url": linkURL(linkBase, req.Used, res.Next)})
		}
	}
	var issues []fhir.Issue
	for _, p := range req.Ignored {
		issues = append(issues, fhir.Issue{Severity: fhir.SeverityWarning, Code: "not-supported",
			Diagnostics: "unknown search parameter " + strconv.Quote(p) + " was ignored"})
	}
	if res.IncludedTruncated {
		issues = append(issues, fhir.Issue{Severity: fhir.SeverityWarning, Code: "too-costly",
			Diagnostics: "_include/_revinclude stopped at the server's limit; some included resources are missing"})
	}
	if len(issues) > 0 {
		entries = append(entries, fhir.Object{
			"resource": fhir.OutcomeOf(issues...),
			"search":   fhir.Object{"mode": "outcome"},
		})
	}
	b := fhir.Object{"resourceType": "Bundle", "type": "searchset", "link": links}
	if res.Total >= 0 && req.Query.Total {
		b["total"] = res.Total
	}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	return b, nil
}

// entry is one searchset entry; the stored JSON is embedded verbatim unless
// _summary or _elements asks for a subset.
func (e *Engine) entry(v *store.Version, mode string, req *search.Request) (fhir.Object, error) {
	var body any = json.RawMessage(v.Body)
	if req.Summary != "" && req.Summary != "false" || len(req.Elements) > 0 {
		r, err := fhir.ParseObject(v.Body, 0)
		if err != nil {
			return nil, fhir.Internal(err)
		}
		body = search.Shape(v.Type, r, req.Summary, req.Elements)
	}
	return fhir.Object{
		"fullUrl":  e.fullURL(v.Type, v.ID),
		"resource": body,
		"search":   fhir.Object{"mode": mode},
	}, nil
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

// matchConditional runs the criteria of a conditional interaction inside tx
// and returns the matches (at most two: enough to tell one from many).
// Under an access filter (WithAccess) only what the caller may see can
// match: a conditional create never finds, nor reveals, a withheld record.
func matchConditional(ctx context.Context, tx store.Tx, typ string, q url.Values) ([]*store.Version, error) {
	s, err := parseSearch(typ, q, true, true)
	if err != nil {
		return nil, err
	}
	s.q.Count = 2
	s.q.Filter = accessFilter(ctx)
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

// Everything returns Patient/id/$everything: the patient, every resource in
// their compartment and the resources those refer to (R4
// patient-operation-everything), paged. start and end (dates) keep the
// resources whose "date" parameter overlaps them, and those of types
// without a date; _since keeps resources updated since an instant; _type
// restricts the types; _count sets the page size.
func (e *Engine) Everything(ctx context.Context, id string, q url.Values) (fhir.Object, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if _, err := e.Read(ctx, "Patient", id); err != nil {
		return nil, err // missing, deleted or withheld by the access filter
	}
	types := compartmentTypes()
	pass := url.Values{}
	var extra []store.Clause
	for name, vals := range q {
		switch name {
		case "_count", "_summary", "_elements":
			pass[name] = vals
		case "_cursor":
			// Not in the links' parameters: linkURL adds each link's own.
		case "_type":
			var want []string
			for _, v := range vals {
				for _, t := range splitComma(v) {
					if !r4.IsResource(t) {
						return nil, fhir.Invalid("", "_type: unknown resource type %q", trunc(t))
					}
					want = append(want, t)
				}
			}
			types = intersectTypes(want, types)
			pass[name] = vals
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, last(vals))
			if err != nil {
				return nil, fhir.Invalid("", "_since must be an instant, not %q", trunc(last(vals)))
			}
			extra = append(extra, store.Clause{{Kind: store.CondLastUpdated, Prefix: store.PrefixGE, Lo: t.UnixMilli(), Hi: t.UnixMilli()}})
			pass[name] = vals
		case "start", "end":
			pr := store.PrefixGE
			if name == "end" {
				pr = store.PrefixLE
			}
			c, err := search.DateCond("date", last(vals))
			if err != nil {
				return nil, fhir.Invalid("", "%s must be a date, not %q", name, trunc(last(vals)))
			}
			// start: resources whose date reaches the start day or later;
			// end: those that reach the end day or earlier.
			c.Prefix = pr
			extra = append(extra, store.Clause{c, {Kind: store.CondDate, Param: "date", Missing: store.MissingTrue}})
			pass[name] = vals
		default:
			if strictHandling(ctx) {
				return nil, fhir.Invalid("", "unknown $everything parameter %q", trunc(name))
			}
		}
	}
	control := url.Values{}
	for _, k := range []string{"_count", "_cursor", "_summary", "_elements"} {
		if vals, ok := q[k]; ok {
			control[k] = vals
		}
	}
	req, err := search.Parse("", control, search.Options{})
	if err != nil {
		return nil, err
	}
	req.Used = pass
	req.Query.Types = types
	req.Query.Clauses = append([]store.Clause{{{Kind: store.CondCompartment, RefType: "Patient", RefID: id}}}, extra...)
	if _, ok := q["_type"]; ok {
		// _type limits everything returned, referenced resources too.
		for _, t := range types {
			req.Query.Include = append(req.Query.Include, store.Include{SourceType: "*", Param: "*", TargetType: t})
		}
	} else {
		req.Query.Include = []store.Include{{SourceType: "*", Param: "*"}}
	}
	return e.runSearch(ctx, req, e.cfg.BaseURL+"/Patient/"+id+"/$everything")
}

func splitComma(s string) []string {
	var out []string
	for i, start := 0, 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if t := s[start:i]; t != "" {
				out = append(out, t)
			}
			start = i + 1
		}
	}
	return out
}

func last(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[len(vals)-1]
}
