package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// Bundle processes a batch or transaction Bundle (FHIR http.html#transaction)
// and returns the batch-response or transaction-response Bundle.
//
// A transaction is atomic: every entry is written in one store transaction,
// in the specification's order (DELETE, then POST, then PUT and PATCH, then
// GET and HEAD); any failing entry fails the whole transaction with that
// entry's error, its location prefixed with "Bundle.entry[i]", and nothing
// is written. fullUrls of the entries (urn:uuid:, urn:oid: or absolute) are
// mapped to the ids the entries end up with, and every reference element in
// every entry is rewritten accordingly; conditional references
// ("Patient?identifier=sys|val") are resolved by a search inside the
// transaction and must match exactly one resource (else 412).
//
// A batch processes each entry on its own, in the same order, each in its
// own store transaction; a failing entry gets its status and an
// OperationOutcome in entry.response.outcome and the others go on. Entries
// of a batch may not depend on each other (FHIR), so fullUrls are not mapped;
// conditional references are still resolved.
//
// GET and HEAD entries (read, vread, history, search) are answered under the
// context's access filter (WithAccess) exactly as the direct requests are:
// a withheld resource is the 404 of a missing one.
//
// Responses carry each written resource (return=representation); an api
// honouring Prefer: return=minimal may drop entry.resource.
func (e *Engine) Bundle(ctx context.Context, body []byte, o WriteOptions) (fhir.Object, error) {
	b, err := fhir.ParseObject(body, 0)
	if err != nil {
		return nil, err
	}
	if rt, _ := b["resourceType"].(string); rt != "Bundle" {
		return nil, fhir.Invalid("", "the body must be a Bundle, not %q", trunc(rt))
	}
	kind, _ := b["type"].(string)
	if kind != "batch" && kind != "transaction" {
		return nil, fhir.Invalid("Bundle.type", "only batch and transaction Bundles can be processed, not %q", trunc(kind))
	}
	var raw []any
	switch v := b["entry"].(type) {
	case nil:
	case []any:
		raw = v
	default:
		return nil, fhir.Invalid("Bundle.entry", "Bundle.entry must be an array")
	}
	if len(raw) > e.cfg.MaxBundleEntries {
		return nil, fhir.Errorf(fhir.ETooLarge, "Bundle.entry", "the Bundle has %d entries; at most %d are accepted", len(raw), e.cfg.MaxBundleEntries)
	}
	if seen, _ := ctx.Value(bundleSeenKey{}).(func(string, []BundleRequest)); seen != nil {
		reqs := make([]BundleRequest, len(raw))
		for i, r := range raw {
			eo, _ := r.(fhir.Object)
			req, _ := eo["request"].(fhir.Object)
			reqs[i].Method, _ = req["method"].(string)
			reqs[i].URL, _ = req["url"].(string)
		}
		seen(kind, reqs)
	}
	lenient := o.Lenient || e.cfg.Lenient
	entries := make([]*entry, len(raw))
	errs := make([]error, len(raw))
	for i, r := range raw {
		en, err := e.prepareEntry(i, r, lenient)
		if err != nil {
			err = atEntry(i, err)
			if kind == "transaction" {
				return nil, err
			}
			errs[i] = err
			continue
		}
		if en.cond != nil && (en.method == "POST" || en.method == "PUT") {
			if en.derived, err = e.conditionalID(ctx, en.typ, en.cond); err != nil {
				return nil, err
			}
		}
		entries[i] = en
	}
	now := e.now()
	if kind == "transaction" {
		return e.transaction(ctx, entries, now)
	}
	return e.batch(ctx, entries, errs, now), nil
}

// entry is one prepared bundle entry.
type entry struct {
	i         int
	method    string // GET, HEAD, POST, PUT, PATCH, DELETE
	typ       string // "" for a system-level search
	id        string // from the url, or assigned for POST
	vid       string // GET .../_history/vid
	cond      url.Values
	derived   string     // for conditional POST and PUT: the id a create would use
	bodyID    string     // the id in the resource as sent (PUT)
	search    url.Values // GET Type?query, or a history entry's parameters
	isSearch  bool
	history   bool // GET [Type[/id]]/_history
	ifMatch   int64
	fullURL   string
	res       fhir.Object
	warnings  []fhir.Issue
	ops       []patchOp
	refs      []refSite
	lenient   bool
	static    bool       // every reference could be rewritten before the store transaction
	predicted bool       // pre was encoded with predicted references (predict.go)
	pre       *store.Put // POST version encoded before the store transaction

	// Per attempt of the store transaction.
	target  string // the id the entry acts on
	version int64  // for a conditional POST that creates: the version it writes
	alias   *entry // an earlier POST with the same ifNoneExist criteria
	out     *Outcome
	resp    fhir.Object // GET result
}

// refSite is one reference element: the object holding it and its value as
// sent, so that a retried transaction rewrites from the original.
type refSite struct {
	obj  fhir.Object
	orig string
}

func (e *Engine) prepareEntry(i int, raw any, lenient bool) (*entry, error) {
	eo, ok := raw.(fhir.Object)
	if !ok {
		return nil, fhir.Invalid("", "a Bundle entry must be an object")
	}
	req, ok := eo["request"].(fhir.Object)
	if !ok {
		return nil, fhir.Invalid("request", "the entry has no request")
	}
	en := &entry{i: i, lenient: lenient}
	en.method, _ = req["method"].(string)
	rawURL, ok := req["url"].(string)
	if !ok || rawURL == "" {
		return nil, fhir.Invalid("request.url", "the entry has no request.url")
	}
	if fu, ok := eo["fullUrl"]; ok {
		if en.fullURL, ok = fu.(string); !ok {
			return nil, fhir.Invalid("fullUrl", "fullUrl must be a string")
		}
	}
	var err error
	if im, ok := req["ifMatch"].(string); ok {
		if en.ifMatch, err = parseIfMatch(im); err != nil {
			return nil, err
		}
	}
	path, query, err := e.entryURL(rawURL)
	if err != nil {
		return nil, err
	}
	segs := strings.Split(path, "/")
	if path == "" {
		segs = nil
	}
	get := en.method == "GET" || en.method == "HEAD"
	systemHistory := get && len(segs) == 1 && segs[0] == "_history"
	if len(segs) > 0 && !systemHistory {
		en.typ = segs[0]
		if err := checkType(en.typ); err != nil {
			return nil, err
		}
	}
	hasQuery := query != "" || strings.Contains(rawURL, "?")
	parseQuery := func(conditional bool) (url.Values, error) {
		q, err := parseConditional(query)
		if err != nil {
			return nil, err
		}
		if conditional {
			_, err = parseSearch(en.typ, q, true, true)
		}
		return q, err
	}
	switch en.method {
	case "POST":
		if len(segs) != 1 || hasQuery {
			return nil, fhir.Invalid("request.url", "a POST entry's url must be a resource type")
		}
		if ine, ok := req["ifNoneExist"].(string); ok && ine != "" {
			if en.cond, err = conditionalCriteria(en.typ, ine); err != nil {
				return nil, err
			}
		}
		en.id = newID()
	case "PUT", "PATCH", "DELETE":
		switch {
		case len(segs) == 1 && hasQuery:
			if en.cond, err = parseQuery(true); err != nil {
				return nil, err
			}
		case len(segs) == 2 && !hasQuery:
			en.id = segs[1]
			if err := checkID(en.id); err != nil {
				return nil, err
			}
		default:
			return nil, fhir.Invalid("request.url", "a %s entry's url must be Type/id or Type?criteria", en.method)
		}
	case "GET", "HEAD":
		switch {
		case systemHistory || len(segs) == 2 && segs[1] == "_history" || len(segs) == 3 && segs[2] == "_history":
			en.history = true
			if len(segs) == 3 {
				en.id = segs[1]
			}
			if en.search, err = parseQuery(false); err != nil {
				return nil, err
			}
		case len(segs) <= 1:
			en.isSearch = true
			if en.search, err = parseQuery(false); err != nil {
				return nil, err
			}
		case len(segs) == 2 && !hasQuery:
			en.id = segs[1]
		case len(segs) == 4 && segs[2] == "_history" && !hasQuery:
			en.id, en.vid = segs[1], segs[3]
		default:
			return nil, fhir.Errorf(fhir.ENotSupported, "request.url", "this GET entry is not supported: only read, vread, history and search")
		}
	default:
		return nil, fhir.Invalid("request.method", "unknown request.method %q", trunc(en.method))
	}
	resRaw, hasRes := eo["resource"]
	switch en.method {
	case "POST", "PUT":
		res, ok := resRaw.(fhir.Object)
		if !ok {
			return nil, fhir.Invalid("resource", "a %s entry needs a resource", en.method)
		}
		if err := checkResourceType(en.typ, res, "resource"); err != nil {
			return nil, err
		}
		if en.method == "POST" {
			delete(res, "id")
		} else {
			bid, hasID := res["id"].(string)
			if _, present := res["id"]; present && !hasID {
				return nil, fhir.Invalid("resource.id", "the id must be a string")
			}
			if en.cond == nil && bid != en.id {
				return nil, fhir.Invalid("resource.id", "the resource id %q does not match the id %q in request.url", trunc(bid), en.id)
			}
			if en.cond != nil && hasID && !fhir.ValidID(bid) {
				return nil, fhir.Invalid("resource.id", "invalid resource id")
			}
			en.bodyID = bid
		}
		if en.warnings, err = validate.Resource(res, validate.Options{Lenient: lenient}); err != nil {
			return nil, err
		}
		en.res = res
		en.refs = collectRefs(res, nil)
	case "PATCH":
		bin, ok := resRaw.(fhir.Object)
		if !ok || bin["resourceType"] != "Binary" {
			return nil, fhir.Errorf(fhir.ENotSupported, "resource", "a PATCH entry needs a Binary resource holding a JSON Patch (FHIRPath Patch is not supported)")
		}
		if ct, _ := bin["contentType"].(string); ct != "application/json-patch+json" {
			return nil, fhir.Errorf(fhir.ENotSupported, "resource.contentType", "only application/json-patch+json patches are supported")
		}
		data, _ := bin["data"].(string)
		doc, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fhir.Invalid("resource.data", "the patch is not valid base64")
		}
		if en.ops, err = parsePatch(doc); err != nil {
			return nil, err
		}
	default:
		if hasRes {
			return nil, fhir.Invalid("resource", "a %s entry must not have a resource", en.method)
		}
	}
	return en, nil
}

// entryURL splits a request.url into path and query, accepting absolute
// URLs under this server's base.
func (e *Engine) entryURL(raw string) (path, query string, err error) {
	path, query, _ = strings.Cut(raw, "?")
	if strings.Contains(path, "://") {
		if e.cfg.BaseURL == "" || !strings.HasPrefix(path, e.cfg.BaseURL+"/") {
			return "", "", fhir.Invalid("request.url", "request.url %q is not on this server", trunc(raw))
		}
		path = path[len(e.cfg.BaseURL)+1:]
	}
	return strings.TrimPrefix(path, "/"), query, nil
}

// collectRefs lists every reference element (any "reference" string, at any
// depth: contained resources, extensions, backbone elements).
func collectRefs(v any, sites []refSite) []refSite {
	switch x := v.(type) {
	case fhir.Object:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "reference" {
				sites = append(sites, refSite{obj: x, orig: s})
				continue
			}
			sites = collectRefs(val, sites)
		}
	case []any:
		for _, it := range x {
			sites = collectRefs(it, sites)
		}
	}
	return sites
}

// elementPath finds the FHIRPath-style location (".subject",
// ".contained[0].target[1]") of the object target inside v. The walk is only
// made when a reference fails, so resolving references keeps no paths.
func elementPath(v any, target fhir.Object) string {
	want := reflect.ValueOf(target).UnsafePointer()
	var walk func(v any, path string) (string, bool)
	walk = func(v any, path string) (string, bool) {
		switch x := v.(type) {
		case fhir.Object:
			if reflect.ValueOf(x).UnsafePointer() == want {
				return path, true
			}
			for k, val := range x {
				if p, ok := walk(val, path+"."+k); ok {
					return p, true
				}
			}
		case []any:
			for i, it := range x {
				if p, ok := walk(it, path+"["+strconv.Itoa(i)+"]"); ok {
					return p, true
				}
			}
		}
		return "", false
	}
	p, _ := walk(v, "")
	return p
}

// methodRank is the FHIR transaction processing order.
func methodRank(m string) int {
	switch m {
	case "DELETE":
		return 0
	case "POST":
		return 1
	case "PUT", "PATCH":
		return 2
	default:
		return 3
	}
}

// rank orders entries for processing: by method in the specification's
// order and, within a method, entries with conditional references after
// the others, so that a conditional reference can find a resource that an
// earlier-processed entry of the same transaction creates.
func (en *entry) rank() int {
	r := 2 * methodRank(en.method)
	for _, s := range en.refs {
		if _, _, ok := conditionalRef(s.orig); ok {
			return r + 1
		}
	}
	return r
}

// refMap resolves references while a transaction runs.
type refMap struct {
	e       *Engine
	ids     map[string]string // fullUrl (and its relative Type/id) -> Type/id
	dynamic map[string]bool   // fullUrls known only inside the store transaction
	// Predictions made before the store transaction (predict.go): fullUrl
	// -> Type/id and conditional reference -> Type/id ("" when unknown).
	predIDs  map[string]string
	predCond map[string]string
	cond     map[string]string // conditional reference -> Type/id, per attempt
}

// conditionalRef reports whether s is a conditional reference Type?criteria.
func conditionalRef(s string) (typ, query string, ok bool) {
	typ, query, ok = strings.Cut(s, "?")
	if !ok || strings.Contains(typ, "/") || !r4.IsResource(typ) {
		return "", "", false
	}
	return typ, query, true
}

// isStatic reports whether ref can be rewritten before the store
// transaction.
func (m *refMap) isStatic(ref string) bool {
	if _, _, ok := conditionalRef(ref); ok {
		return false
	}
	return !m.dynamic[ref]
}

// resolve returns the rewritten form of ref.
func (m *refMap) resolve(ctx context.Context, tx store.Tx, ref string) (string, error) {
	if to, ok := m.ids[ref]; ok {
		return to, nil
	}
	if typ, query, ok := conditionalRef(ref); ok {
		if to, ok := m.cond[ref]; ok {
			return to, nil
		}
		if tx == nil {
			return ref, nil
		}
		q, err := parseConditional(query)
		if err != nil {
			return "", err
		}
		found, err := matchConditional(ctx, tx, typ, q)
		if err != nil {
			return "", err
		}
		if len(found) != 1 {
			what := "no"
			if len(found) > 1 {
				what = "more than one"
			}
			return "", fhir.Errorf(fhir.EPreconditionFailed, "", "the conditional reference %q matches %s resource", trunc(ref), what)
		}
		to := typ + "/" + found[0].ID
		m.cond[ref] = to
		return to, nil
	}
	// An absolute reference to a resource on this server is stored in the
	// relative form, which stays true if the server's base URL changes.
	if b := m.e.cfg.BaseURL; b != "" && strings.HasPrefix(ref, b+"/") {
		rel := ref[len(b)+1:]
		if t, id, ok := strings.Cut(rel, "/"); ok && r4.IsResource(t) && fhir.ValidID(id) {
			return rel, nil
		}
	}
	return ref, nil
}

// rewrite sets every reference of en to its resolved form.
func (m *refMap) rewrite(ctx context.Context, tx store.Tx, en *entry) error {
	for _, s := range en.refs {
		to, err := m.resolve(ctx, tx, s.orig)
		if err != nil {
			return withExpr(err, "resource"+elementPath(en.res, s.obj)+".reference")
		}
		s.obj["reference"] = to
	}
	return nil
}

// mapID registers where the entry with fullUrl ends up.
func (m *refMap) mapID(fullURL, typ, id string) {
	if fullURL == "" {
		return
	}
	to := typ + "/" + id
	m.ids[fullURL] = to
	// An absolute fullUrl ending in Type/id also names the entry by that
	// relative reference (FHIR bundle.html#references).
	if strings.Contains(fullURL, "://") {
		if i := strings.LastIndex(fullURL, "/"); i > 0 {
			if j := strings.LastIndex(fullURL[:i], "/"); j >= 0 {
				rel := fullURL[j+1:]
				if rel != to && r4.IsResource(fullURL[j+1:i]) {
					m.ids[rel] = to
				}
			}
		}
	}
}

func (e *Engine) transaction(ctx context.Context, entries []*entry, now time.Time) (fhir.Object, error) {
	m := &refMap{e: e, ids: map[string]string{}, dynamic: map[string]bool{}}
	seenURL := map[string]int{}
	for _, en := range entries {
		if en.fullURL != "" {
			if j, dup := seenURL[en.fullURL]; dup {
				return nil, fhir.Invalid("Bundle.entry["+strconv.Itoa(en.i)+"].fullUrl", "fullUrl %q is also used by entry %d", trunc(en.fullURL), j)
			}
			seenURL[en.fullURL] = en.i
		}
		switch {
		case en.method == "GET" || en.method == "HEAD" || en.method == "DELETE":
		case en.cond != nil:
			if en.fullURL != "" {
				m.dynamic[en.fullURL] = true
			}
		default:
			m.mapID(en.fullURL, en.typ, en.id)
		}
	}
	// Entries whose references are all known now are rewritten, indexed and
	// (for POST, whose version is 1) encoded before the store transaction,
	// keeping the single writer's critical section short.
	for _, en := range entries {
		if en.res == nil {
			continue
		}
		en.static = true
		for _, s := range en.refs {
			if !m.isStatic(s.orig) {
				en.static = false
				break
			}
		}
		if !en.static {
			continue
		}
		if err := m.rewrite(ctx, nil, en); err != nil {
			return nil, atEntry(en.i, err)
		}
		en.refs = nil
		if en.method == "POST" && en.cond == nil {
			en.pre = e.newPut(en.typ, en.id, 1, en.res, now)
		}
	}
	if len(entries) == 0 {
		return e.responseBundle("transaction-response", entries, nil), nil
	}
	for _, en := range entries {
		if en.res != nil && !en.static {
			e.predict(ctx, entries, m, now)
			break
		}
	}
	order := slices.Clone(entries)
	slices.SortStableFunc(order, func(a, b *entry) int { return a.rank() - b.rank() })
	err := e.write(ctx, func(tx store.Tx) error {
		m.cond = map[string]string{}
		return e.runEntries(ctx, tx, order, m, now)
	})
	if err != nil {
		return nil, err
	}
	return e.responseBundle("transaction-response", entries, nil), nil
}

// runEntries performs the entries, already in processing order, inside tx.
func (e *Engine) runEntries(ctx context.Context, tx store.Tx, order []*entry, m *refMap, now time.Time) error {
	// Resolve every entry's target first: conditional matches decide the
	// ids that references to conditional entries are rewritten to, and two
	// entries acting on the same resource are an error (FHIR
	// http.html#trules).
	touched := map[string]int{}
	creates := map[string]*entry{}
	for _, en := range order {
		en.out, en.resp, en.target, en.version, en.alias = nil, nil, en.id, 1, nil
		if en.method == "GET" || en.method == "HEAD" {
			continue
		}
		if en.cond != nil && en.method == "POST" {
			// The same conditional create twice in one transaction (a feed
			// repeating an Organization) is one resource, not two.
			key := en.typ + "?" + en.cond.Encode()
			if first, ok := creates[key]; ok {
				en.alias, en.target = first, first.target
				if en.fullURL != "" {
					m.ids[en.fullURL] = en.typ + "/" + en.target
				}
				continue
			}
			creates[key] = en
		}
		if en.cond != nil {
			switch en.method {
			case "POST":
				found, err := matchConditional(ctx, tx, en.typ, en.cond)
				if err != nil {
					return atEntry(en.i, err)
				}
				if len(found) > 1 {
					return atEntry(en.i, fhir.Errorf(fhir.EPreconditionFailed, "", "ifNoneExist matches more than one %s", en.typ))
				}
				if len(found) == 1 {
					en.target = found[0].ID
					en.out = &Outcome{Version: found[0], NoOp: true, Warnings: en.warnings}
				} else if en.target, en.version, err = createTarget(ctx, tx, en.typ, en.derived, en.cond); err != nil {
					return atEntry(en.i, err)
				}
			case "PUT":
				id, mustNotExist, err := resolveConditionalUpdate(ctx, tx, en.typ, en.cond, en.bodyID, en.derived)
				if err != nil {
					return atEntry(en.i, err)
				}
				en.target = id
				if mustNotExist {
					cur, err := readForUpdate(ctx, tx, en.typ, id)
					if err != nil {
						return atEntry(en.i, err)
					}
					if cur != nil && !cur.Deleted {
						return atEntry(en.i, fhir.Errorf(fhir.EConflict, "", "%s/%s exists but does not match the conditional update criteria", en.typ, id))
					}
				}
			default: // PATCH, DELETE
				found, err := matchConditional(ctx, tx, en.typ, en.cond)
				if err != nil {
					return atEntry(en.i, err)
				}
				switch {
				case len(found) > 1:
					return atEntry(en.i, fhir.Errorf(fhir.EPreconditionFailed, "", "the conditional criteria match more than one %s", en.typ))
				case len(found) == 1:
					en.target = found[0].ID
				case en.method == "PATCH":
					return atEntry(en.i, fhir.Errorf(fhir.ENotFound, "", "no %s matches the conditional patch criteria", en.typ))
				default:
					en.target = "" // conditional delete of nothing
				}
			}
			if en.fullURL != "" && en.target != "" {
				m.ids[en.fullURL] = en.typ + "/" + en.target
			}
		}
		if en.target == "" {
			continue
		}
		key := en.typ + "/" + en.target
		if j, dup := touched[key]; dup {
			return atEntry(en.i, fhir.Invalid("", "entries %d and %d both act on %s", j, en.i, key))
		}
		touched[key] = en.i
	}
	for _, en := range order {
		if err := e.runEntry(ctx, tx, en, m, now); err != nil {
			return atEntry(en.i, err)
		}
	}
	return nil
}

func (e *Engine) runEntry(ctx context.Context, tx store.Tx, en *entry, m *refMap, now time.Time) error {
	var err error
	switch en.method {
	case "DELETE":
		if en.target == "" {
			en.out = &Outcome{NoOp: true}
			return nil
		}
		en.out, err = deleteResource(ctx, tx, en.typ, en.target, en.ifMatch, now)
		return err
	case "POST":
		if en.alias != nil {
			en.out = &Outcome{Version: en.alias.out.Version, NoOp: true, Warnings: en.warnings}
			return nil
		}
		if en.out != nil { // ifNoneExist matched
			return nil
		}
		p := en.pre
		if en.predicted && !m.predictionHolds(ctx, tx, en) {
			p = nil
		}
		if p == nil {
			if err := m.rewrite(ctx, tx, en); err != nil {
				return err
			}
			p = e.newPut(en.typ, en.target, en.version, en.res, now)
		}
		if err := put(ctx, tx, p); err != nil {
			return err
		}
		en.out = &Outcome{Version: versionOf(p), Created: true, Warnings: en.warnings}
		return nil
	case "PUT":
		if !en.static {
			if err := m.rewrite(ctx, tx, en); err != nil {
				return err
			}
		}
		en.out, err = e.putResource(ctx, tx, en.typ, en.target, en.res, en.ifMatch, now, false)
		if err == nil {
			en.out.Warnings = en.warnings
		}
		return err
	case "PATCH":
		en.out, err = e.patchIn(ctx, tx, en.typ, en.target, en.ops, en.ifMatch, en.lenient, now)
		return err
	default: // GET, HEAD
		return e.getEntry(ctx, tx, en)
	}
}

// getEntry answers a GET entry under the context's access filter, as the
// direct request would be answered: read and search see the transaction's
// own writes; vread and history go to the store (Engine.VRead,
// Engine.History).
func (e *Engine) getEntry(ctx context.Context, tx store.Tx, en *entry) error {
	switch {
	case en.isSearch:
		s, err := parseSearch(en.typ, en.search, strictHandling(ctx), false)
		if err != nil {
			return err
		}
		s.q.Count = max(s.count, 1)
		s.q.Filter = accessFilter(ctx)
		res, err := tx.Search(ctx, &s.q)
		if err != nil {
			return err
		}
		entries := make([]any, 0, len(res.Versions))
		for _, v := range res.Versions {
			if s.count == 0 {
				break
			}
			entries = append(entries, fhir.Object{"fullUrl": e.fullURL(v.Type, v.ID), "resource": json.RawMessage(v.Body), "search": fhir.Object{"mode": "match"}})
		}
		b := fhir.Object{"resourceType": "Bundle", "type": "searchset"}
		if len(entries) > 0 {
			b["entry"] = entries
		}
		if s.q.Total && res.Total >= 0 {
			b["total"] = res.Total
		}
		en.resp = b
		return nil
	case en.vid != "":
		v, err := e.VRead(ctx, en.typ, en.id, en.vid)
		if err != nil {
			return err
		}
		en.out = &Outcome{Version: v}
		return nil
	case en.history:
		b, err := e.History(ctx, en.typ, en.id, en.search)
		if err != nil {
			return err
		}
		en.resp = b
		return nil
	default:
		if err := checkID(en.id); err != nil {
			return err
		}
		v, err := tx.Read(ctx, en.typ, en.id)
		if err != nil {
			return notFound(err, en.typ, en.id)
		}
		// As Engine.Read: before the deletion is told, the filter decides,
		// so a withheld resource, and under a filter a deleted one, is the
		// 404 of a missing one.
		if err := visibleIn(ctx, tx, en.typ, en.id); err != nil {
			return err
		}
		if v.Deleted {
			return gone(v)
		}
		en.out = &Outcome{Version: v}
		return nil
	}
}

func (e *Engine) batch(ctx context.Context, entries []*entry, errs []error, now time.Time) fhir.Object {
	order := make([]*entry, 0, len(entries))
	for _, en := range entries {
		if en != nil {
			order = append(order, en)
		}
	}
	slices.SortStableFunc(order, func(a, b *entry) int { return methodRank(a.method) - methodRank(b.method) })
	for _, en := range order {
		m := &refMap{e: e, ids: map[string]string{}}
		en.static = len(en.refs) == 0
		err := e.write(ctx, func(tx store.Tx) error {
			m.cond = map[string]string{}
			return e.runEntries(ctx, tx, []*entry{en}, m, now)
		})
		if err != nil {
			errs[en.i] = err
		}
	}
	return e.responseBundle("batch-response", entries, errs)
}

// responseBundle builds the response, one entry per request entry in the
// request's order.
func (e *Engine) responseBundle(kind string, entries []*entry, errs []error) fhir.Object {
	out := make([]any, len(entries))
	for i, en := range entries {
		if errs != nil && errs[i] != nil {
			out[i] = fhir.Object{"response": fhir.Object{
				"status":  statusLine(fhir.KindOf(errs[i])),
				"outcome": fhir.Outcome(errs[i]),
			}}
			continue
		}
		out[i] = e.entryResponse(en)
	}
	b := fhir.Object{"resourceType": "Bundle", "type": kind}
	if len(out) > 0 { // FHIR JSON has no empty arrays
		b["entry"] = out
	}
	return b
}

func (e *Engine) entryResponse(en *entry) fhir.Object {
	resp := fhir.Object{}
	r := fhir.Object{"response": resp}
	if en.resp != nil {
		resp["status"] = "200 OK"
		r["resource"] = en.resp
		return r
	}
	o := en.out
	switch {
	case en.method == "DELETE":
		resp["status"] = "204 No Content"
	case o.Created:
		resp["status"] = "201 Created"
	default:
		resp["status"] = "200 OK"
	}
	if v := o.Version; v != nil {
		vs := strconv.FormatInt(v.VersionID, 10)
		resp["etag"] = `W/"` + vs + `"`
		resp["lastModified"] = fhir.FormatInstant(v.LastUpdated)
		if en.method != "GET" && en.method != "HEAD" {
			resp["location"] = v.Type + "/" + v.ID + "/_history/" + vs
		}
		if !v.Deleted && en.method != "DELETE" {
			r["resource"] = json.RawMessage(v.Body)
		}
	}
	if len(o.Warnings) > 0 {
		resp["outcome"] = fhir.OutcomeOf(o.Warnings...)
	}
	if v := o.Version; v != nil && en.method != "GET" && en.method != "HEAD" {
		r["fullUrl"] = e.fullURL(v.Type, v.ID)
	}
	return r
}

// statusLine is the HTTP status line of an error kind, for entry.response.
func statusLine(k fhir.Kind) string {
	switch k {
	case fhir.EInvalid:
		return "400 Bad Request"
	case fhir.EUnprocessable:
		return "422 Unprocessable Entity"
	case fhir.ENotFound:
		return "404 Not Found"
	case fhir.EGone:
		return "410 Gone"
	case fhir.EConflict:
		return "409 Conflict"
	case fhir.EPreconditionFailed:
		return "412 Precondition Failed"
	case fhir.ETooLarge:
		return "413 Content Too Large"
	case fhir.EUnsupportedMedia:
		return "415 Unsupported Media Type"
	case fhir.EMethodNotAllowed:
		return "405 Method Not Allowed"
	case fhir.EUnauthorized:
		return "401 Unauthorized"
	case fhir.EForbidden:
		return "403 Forbidden"
	case fhir.ENotSupported:
		return "501 Not Implemented"
	case fhir.EUnavailable:
		return "503 Service Unavailable"
	case fhir.ETooManyRequests:
		return "429 Too Many Requests"
	default:
		return "500 Internal Server Error"
	}
}

// atEntry locates err at bundle entry i: each issue's expression is
// prefixed with Bundle.entry[i] (a resource path such as
// "Patient.name[0]" becomes "Bundle.entry[i].resource.name[0]").
func atEntry(i int, err error) error {
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind == fhir.EInternal {
		return err
	}
	prefix := "Bundle.entry[" + strconv.Itoa(i) + "]"
	ne := &fhir.Error{Kind: fe.Kind, Err: fe.Err, Issues: make([]fhir.Issue, len(fe.Issues))}
	for k, is := range fe.Issues {
		switch x := is.Expression; {
		case strings.HasPrefix(x, "Bundle.entry["):
		case x == "":
			is.Expression = prefix
		case strings.HasPrefix(x, "resource") || strings.HasPrefix(x, "request") || strings.HasPrefix(x, "fullUrl"):
			is.Expression = prefix + "." + x
		case strings.HasPrefix(x, "["):
			is.Expression = prefix + x
		default:
			if dot := strings.IndexAny(x, ".["); dot > 0 && r4.IsResource(x[:dot]) {
				is.Expression = prefix + ".resource" + x[dot:]
			} else if r4.IsResource(x) {
				is.Expression = prefix + ".resource"
			} else {
				is.Expression = prefix + "." + x
			}
		}
		if !strings.HasPrefix(is.Diagnostics, "entry ") {
			is.Diagnostics = "entry " + strconv.Itoa(i) + ": " + is.Diagnostics
		}
		ne.Issues[k] = is
	}
	return ne
}

// withExpr sets the location of a single-issue error that has none.
func withExpr(err error, expr string) error {
	var fe *fhir.Error
	if errors.As(err, &fe) && len(fe.Issues) == 1 && fe.Issues[0].Expression == "" && expr != "" {
		ne := *fe
		ne.Issues = []fhir.Issue{fe.Issues[0]}
		ne.Issues[0].Expression = expr
		return &ne
	}
	return err
}
