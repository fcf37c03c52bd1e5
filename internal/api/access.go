package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/search"
	"github.com/sharedcare/sharedcare/internal/store"
)

// NewWithAccess is New with every /fhir request decided by dec (issue 6):
// the decision becomes the engine's access filter for reads and searches,
// and writes are checked before they reach the engine. The decider travels
// with the verifier because both answer for the caller: one says who they
// are, the other what they may do.
func NewWithAccess(svc Service, verifier Verifier, dec *access.Decider, cfg config.Config, log *slog.Logger) http.Handler {
	as := &accessService{Service: svc, dec: dec, factCache: newFactCache(cfg.BaseURL)}
	var wrapped Service = as
	if m, ok := svc.(MPI); ok {
		wrapped = &accessServiceMPI{accessService: as, MPI: m}
	}
	return New(wrapped, &guarded{Verifier: verifier, dec: dec}, cfg, log)
}

// accessService decides a read by id on the version it has just read (one
// query, as without access control) instead of asking the database again
// with the filter: measured, the filtered query cost a read by id four
// times its own time (docs/ACCESS.md, Cost). Everything else passes
// through to the service, under the filter in the context.
type accessService struct {
	Service
	dec *access.Decider
	*factCache
}

// factCache keeps the access-relevant facts of versions read, for the
// access decision of a read by id and for its audit entry (audit.go).
type factCache struct {
	ix *search.Indexer

	mu   sync.Mutex
	seen map[versionKey]*versionFacts // bounded; see facts
}

func newFactCache(base string) *factCache {
	return &factCache{ix: &search.Indexer{Base: base}, seen: map[versionKey]*versionFacts{}}
}

// accessServiceMPI is accessService over a service with a patient index.
type accessServiceMPI struct {
	*accessService
	MPI
}

type versionKey struct {
	typ, id string
	version int64
}

// versionFacts are what the access filter looks at in one version.
type versionFacts struct {
	patients []string
	source   string
	labels   []store.Label
}

// maxSeen bounds the per-version cache (a few hundred bytes each).
const maxSeen = 100000

type callerKey struct{}

// Read decides a read by id in Go: the same test the stores make in SQL
// (access.Decider.Allows), on the compartments, source and labels the indexer
// extracts from the version read. A withheld, missing or deleted resource
// gets the one 404 of a missing one.
func (s *accessService) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	c, ok := ctx.Value(callerKey{}).(*access.Caller)
	if !ok || c == nil {
		return s.Service.Read(ctx, typ, id)
	}
	v, err := s.Service.Read(engine.WithAccess(ctx, nil), typ, id)
	if err != nil {
		if fhir.IsKind(err, fhir.ENotFound) || fhir.IsKind(err, fhir.EGone) {
			return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s not found", typ, id)
		}
		return nil, err
	}
	vf, err := s.facts(v)
	if err != nil {
		return nil, err
	}
	ok, err = s.dec.Allows(ctx, c, access.OpRead, typ, vf.patients, vf.source, vf.labels)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s not found", typ, id)
	}
	return v, nil
}

// facts returns the access-relevant facts of a version, extracted by the
// same indexer that wrote its index rows.
func (s *factCache) facts(v *store.Version) (*versionFacts, error) {
	k := versionKey{v.Type, v.ID, v.VersionID}
	s.mu.Lock()
	vf := s.seen[k]
	s.mu.Unlock()
	if vf != nil {
		return vf, nil
	}
	vf, err := s.factsOf(v.Type, v.Body)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.seen) >= maxSeen {
		s.seen = map[versionKey]*versionFacts{}
	}
	s.seen[k] = vf
	s.mu.Unlock()
	return vf, nil
}

// factsOf extracts the facts of a resource's JSON, uncached.
func (s *factCache) factsOf(typ string, body []byte) (*versionFacts, error) {
	res, err := fhir.ParseObject(body, fhir.DefaultMaxDepth)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return s.factsOfObject(typ, res), nil
}

// factsOfObject extracts the facts of a parsed resource.
func (s *factCache) factsOfObject(typ string, res fhir.Object) *versionFacts {
	vf := &versionFacts{}
	idx := s.ix.IndexOnly(typ, res, "_source", "_security")
	for _, cm := range idx.Compartments {
		if cm.Type == "Patient" {
			vf.patients = append(vf.patients, cm.ID)
		}
	}
	vf.source, _ = idx.Source()
	vf.labels = idx.Labels()
	return vf
}

// CompartmentSearch and Everything forward to the service when it has them.
func (s *accessService) CompartmentSearch(ctx context.Context, ctype, id, typ string, q url.Values) (fhir.Object, error) {
	c, ok := s.Service.(Compartments)
	if !ok {
		return nil, errorf(fhir.ENotFound, "not-supported", "compartment searches are not available")
	}
	return c.CompartmentSearch(ctx, ctype, id, typ, q)
}

func (s *accessService) Everything(ctx context.Context, id string, q url.Values) (fhir.Object, error) {
	c, ok := s.Service.(Compartments)
	if !ok {
		return nil, errorf(fhir.ENotFound, "not-supported", "$everything is not available")
	}
	return c.Everything(ctx, id, q)
}

// Ping forwards to the service when it can say whether its store is ready.
func (s *accessService) Ping(ctx context.Context) error {
	if p, ok := s.Service.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// rawRead reads without any access decision (the checks of writes).
func (h *handler) rawRead(ctx context.Context, typ, id string) (*store.Version, error) {
	return h.svc.Read(context.WithValue(engine.WithAccess(ctx, nil), callerKey{}, nil), typ, id)
}

// guarded is a Verifier with the access decider of the node.
type guarded struct {
	Verifier
	dec *access.Decider
}

// decider returns the node's access decider, or nil when none is
// configured (then only the node operator's admin token is served).
func (h *handler) decider() *access.Decider {
	if g, ok := h.verifier.(*guarded); ok {
		return g.dec
	}
	return nil
}

// authorize decides the request of caller p. It returns the request to
// serve (its context carrying the access filter) and false when it has
// answered the request itself (a refusal, or one of the access operations).
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, p *auth.Principal) (*http.Request, bool) {
	if p.Kind == auth.KindAdmin {
		// The node operator's token (issue 2) is full access by design;
		// it is minted on the node itself and never given to a person.
		if h.decider() != nil && isAccessOp(r) {
			h.accessOp(w, r, &access.Caller{Kind: auth.KindAdmin, User: p.Subject})
			return r, false
		}
		return r, true
	}
	dec := h.decider()
	if dec == nil {
		h.fail(w, r, errorf(fhir.EForbidden, "forbidden", "this node serves only its operator: access control is not configured"))
		return r, false
	}
	c, err := access.CallerOf(p)
	if err != nil {
		h.fail(w, r, err)
		return r, false
	}
	if isAccessOp(r) {
		h.accessOp(w, r, c)
		return r, false
	}
	op, err := interaction(r)
	if err != nil {
		h.fail(w, r, err)
		return r, false
	}
	if op == opPatch {
		// Decided by its result: from here on it is that update.
		if err := h.patchAsUpdate(w, r, dec, c); err != nil {
			h.fail(w, r, err)
			return r, false
		}
		op = access.OpUpdate
	}
	ctx := r.Context()
	if op == access.OpRead && isReadByID(r) {
		// Decided on the version read (accessService.Read); anything else
		// the route might ask sees nothing.
		return r.WithContext(context.WithValue(engine.WithAccess(ctx, &store.Filter{}), callerKey{}, c)), true
	}
	narrow, err := h.narrowing(r, op)
	if err != nil {
		h.fail(w, r, err)
		return r, false
	}
	var readFilter *store.Filter
	switch op {
	case access.OpCreate, access.OpUpdate, access.OpDelete:
		// A write reads nothing through the filter; checkWrite decides
		// with filters narrowed to the resource.
		readFilter = &store.Filter{}
	case opBundle:
		// A bundle's searches see what the search alone would.
		if readFilter, err = bundleFilter(ctx, dec, c, access.OpSearch, narrow); err != nil {
			h.fail(w, r, err)
			return r, false
		}
	default:
		if readFilter, err = dec.FilterFor(ctx, c, readOp(op), narrow); err != nil {
			h.fail(w, r, err)
			return r, false
		}
	}
	actx := engine.WithAccess(ctx, readFilter)
	if op == opBundle {
		// Its reads by id (read, vread, instance history) are decided as
		// the same requests alone would be: with the caller's read
		// permission, not their search permission.
		byID, err := bundleFilter(ctx, dec, c, access.OpRead, narrow)
		if err != nil {
			h.fail(w, r, err)
			return r, false
		}
		actx = engine.WithReadAccess(actx, byID)
	}
	r = r.WithContext(context.WithValue(actx, callerKey{}, c))
	if op == opBundle || op == access.OpCreate || op == access.OpUpdate || op == access.OpDelete {
		// A bundle's filter may have been too wide to send (see above):
		// then its conditional entries have nothing to match against.
		searchable := op != opBundle || len(readFilter.Grants) > 0
		conditional, err := h.checkWrite(w, r, dec, c, op, searchable)
		if err != nil {
			h.fail(w, r, err)
			return r, false
		}
		if conditional && op != opBundle {
			// The criteria of If-None-Exist and of conditional references
			// are matched against what the caller may see, never wider.
			f, err := dec.FilterFor(ctx, c, access.OpSearch, access.Narrow{})
			if err != nil {
				h.fail(w, r, err)
				return r, false
			}
			r = r.WithContext(context.WithValue(engine.WithAccess(ctx, f), callerKey{}, c))
		}
	}
	return r, true
}

// bundleFilter is the filter a bundle's GET entries of interaction op see.
// A refusal (a caller allowed nothing of op, or a view more than the
// database can take) is a filter that lets nothing through, not an error:
// those entries are each the 404 of a missing resource (fail closed).
func bundleFilter(ctx context.Context, dec *access.Decider, c *access.Caller, op rune, narrow access.Narrow) (*store.Filter, error) {
	f, err := dec.FilterFor(ctx, c, op, narrow)
	if fhir.IsKind(err, fhir.EForbidden) {
		return &store.Filter{}, nil
	}
	return f, err
}

// opBundle marks a batch or transaction: each entry is decided.
const opBundle = 'b'

// opPatch marks JSON Patch of one resource by id (patchAsUpdate).
const opPatch = 'p'

// patchAsUpdate turns PATCH /fhir/{type}/{id} into the update it amounts
// to, so that it is decided like any update: on the resource as it is
// (may the caller change it?) and as it would be (may the caller write
// that, into whose record, stamped as theirs?). The patch is applied here
// to the current version, and the update carries If-Match on that version
// (or the client's own If-Match), so a change made in between is a 412,
// never a patch decided on one version and applied to another.
func (h *handler) patchAsUpdate(w http.ResponseWriter, r *http.Request, dec *access.Decider, c *access.Caller) error {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	typ, id := segs[0], segs[1]
	if err := h.checkExisting(r, dec, c, access.OpUpdate, typ, id); err != nil {
		return err
	}
	v, err := h.rawRead(r.Context(), typ, id)
	if err != nil {
		return err
	}
	if v.Body == nil {
		return errorf(fhir.ENotFound, "not-found", "%s/%s not found", typ, id)
	}
	patch, err := h.readBody(w, r, patchTypes)
	if err != nil {
		return err
	}
	res, err := engine.Patched(typ, id, v.Body, patch)
	if err != nil {
		return err
	}
	body := fhir.Marshal(res)
	r.Method = http.MethodPut
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Encoding")
	r.Header.Set("Content-Type", "application/fhir+json")
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Header.Get("If-Match") == "" {
		r.Header.Set("If-Match", `W/"`+strconv.FormatInt(v.VersionID, 10)+`"`)
	}
	return nil
}

func readOp(op rune) rune {
	if op == access.OpRead {
		return access.OpRead
	}
	return access.OpSearch // searches, and the reads a write or bundle does
}

// interaction names the SMART interaction of a /fhir request. Operations
// the access model cannot decide exactly (conditional updates, patches and
// deletes, whose target is found by a search; the master patient index's
// operations) are refused to everyone but the node operator: deny by
// default. JSON Patch by id is opPatch, decided as the update it amounts
// to (patchAsUpdate).
func interaction(r *http.Request) (rune, error) {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	if segs[0] == "" {
		segs = nil
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	// Built only when refused: it was about 1 us of every request.
	notHere := func() error {
		return errorf(fhir.EForbidden, "forbidden", "this interaction is not available under access control")
	}
	for i, s := range segs {
		if strings.HasPrefix(s, "$") && !(s == "$everything" && i == 2) && !(s == "$validate" && i == 1) {
			return 0, notHere()
		}
	}
	switch len(segs) {
	case 0:
		if get {
			return access.OpSearch, nil
		}
		if r.Method == http.MethodPost {
			return opBundle, nil
		}
	case 1:
		switch {
		case get || segs[0] == "_search":
			return access.OpSearch, nil
		case r.Method == http.MethodPost:
			return access.OpCreate, nil // If-None-Exist: see conditionalFilter
		}
		return 0, notHere()
	case 2:
		switch {
		case segs[1] == "_search" || segs[1] == "_history" || segs[1] == "$validate":
			return access.OpSearch, nil
		case get:
			return access.OpRead, nil
		case r.Method == http.MethodPut:
			return access.OpUpdate, nil
		case r.Method == http.MethodPatch:
			return opPatch, nil
		case r.Method == http.MethodDelete:
			return access.OpDelete, nil
		}
		return 0, notHere()
	case 3, 4:
		if segs[2] == "_history" && get {
			return access.OpRead, nil
		}
		return access.OpSearch, nil
	}
	return access.OpSearch, nil
}

// checkWrite decides a create, update, delete or bundle before the engine
// sees it. The body is read here (with the route's own limits), stamped
// with the writer's organisation as meta.source, and handed on. It reports
// whether the write has conditions to match (If-None-Exist, conditional
// references): the engine then matches them under the caller's search
// filter, so a conditional create never finds, and never reveals, what
// the caller may not see. searchable is false when that filter cannot be
// had (a bundle of a caller whose filter is too wide to send): then
// conditional entries are refused.
//
// A conditional create is decided as the create it would be: when its
// criteria match a visible resource nothing is written. A conditional
// reference to a Patient is refused, since the person a resource is about
// must be known before deciding; conditional references to anything else
// (a practitioner, an organisation, a location by identifier) are
// allowed. Conditional updates and deletes stay refused: their target is
// found by a search.
func (h *handler) checkWrite(w http.ResponseWriter, r *http.Request, dec *access.Decider, c *access.Caller, op rune, searchable bool) (bool, error) {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	if op == access.OpDelete {
		return false, h.checkExisting(r, dec, c, op, segs[0], segs[1])
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		return false, err
	}
	res, err := fhir.ParseObject(body, fhir.DefaultMaxDepth)
	if err != nil {
		return false, fhir.Invalid("", "the body is not a FHIR JSON resource")
	}
	conditional := false
	if op == opBundle {
		if t, _ := res["type"].(string); t == "batch" || t == "transaction" {
			noteOf(r).setSubtype(t) // audited as what it is, refused or not
		}
		conditional, err = h.checkBundle(r, dec, c, res, searchable)
	} else {
		var id string
		if op == access.OpUpdate {
			id = segs[1]
		}
		conditional = op == access.OpCreate && r.Header.Get("If-None-Exist") != ""
		var refs bool
		refs, err = h.checkEntry(r, dec, c, op, segs[0], id, res, nil)
		conditional = conditional || refs
	}
	if err != nil {
		return false, err
	}
	out := fhir.Marshal(res)
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
	r.Header.Del("Content-Encoding")
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return conditional, nil
}

// checkExisting refuses a change to a resource the caller may not change:
// 404 when they cannot see it either (withheld looks like missing), 403
// when they can see but not change it. A resource that does not exist is
// left to the engine (update as create, or 404).
func (h *handler) checkExisting(r *http.Request, dec *access.Decider, c *access.Caller, op rune, typ, id string) error {
	ctx := r.Context()
	v, err := h.rawRead(ctx, typ, id)
	if err != nil || v.Body == nil {
		return nil // missing or gone: nothing to protect; the engine answers
	}
	var people []string
	if typ == "Patient" {
		people = append(people, id)
	}
	source, known := metaSource(v.Body)
	n := access.Narrow{Patients: patientRefs(v.Body, people), Types: []string{typ}, Source: source, Known: known}
	wf, err := dec.FilterFor(ctx, c, op, n)
	if err != nil {
		return err
	}
	if _, err := h.svc.Read(context.WithValue(engine.WithAccess(ctx, wf), callerKey{}, nil), typ, id); err == nil {
		return nil
	}
	if _, err := h.svc.Read(context.WithValue(ctx, callerKey{}, c), typ, id); err == nil {
		return errorf(fhir.EForbidden, "forbidden", "you may not change %s/%s", typ, id)
	}
	return errorf(fhir.ENotFound, "not-found", "%s/%s not found", typ, id)
}

// checkEntry decides one resource to be written (create or update) and
// stamps it with the writer's organisation. newPatients are the fullUrls of
// Patients a bundle creates: a resource about one of them is about a new
// record, not about someone the writer may not see. It reports whether
// the resource holds conditional references (see checkWrite).
func (h *handler) checkEntry(r *http.Request, dec *access.Decider, c *access.Caller, op rune, typ, id string, res fhir.Object, newPatients map[string]bool) (bool, error) {
	if fhir.ResourceType(res) != typ {
		return false, nil // the engine refuses the mismatch with its own message
	}
	if op == access.OpUpdate {
		if err := h.checkExisting(r, dec, c, op, typ, id); err != nil {
			return false, err
		}
	}
	refs, toPatient := conditionalRefs(res)
	if toPatient {
		return false, errorf(fhir.EForbidden, "forbidden", "a conditional reference to a Patient is not available under access control: refer to the Patient by id")
	}
	var patients []string
	newRecord := false
	if typ == "Patient" && (op == access.OpCreate || !h.exists(r.Context(), typ, id)) {
		newRecord = true // a new record is nobody's yet
	} else {
		for _, cm := range (&search.Indexer{Base: h.cfg.BaseURL}).IndexOnly(typ, res).Compartments {
			if cm.Type == "Patient" && cm.ID != "" {
				patients = append(patients, cm.ID)
			}
		}
		newRecord = len(patients) == 0 && refersTo(res, newPatients)
	}
	if err := dec.CheckWrite(r.Context(), c, op, typ, patients, newRecord); err != nil {
		return false, err
	}
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		res["meta"] = meta
	}
	if c.Org != "" {
		meta["source"] = access.Source(c.Org)
	} else {
		meta["source"] = access.PersonSource
	}
	return refs, nil
}

func (h *handler) exists(ctx context.Context, typ, id string) bool {
	_, err := h.rawRead(ctx, typ, id)
	return err == nil
}

// checkBundle decides every entry of a batch or transaction; one refused
// entry refuses the whole bundle, so a transaction is never half allowed.
// It reports whether any entry is conditional (see checkWrite).
func (h *handler) checkBundle(r *http.Request, dec *access.Decider, c *access.Caller, b fhir.Object, searchable bool) (bool, error) {
	conditional := false
	entries, _ := b["entry"].([]any)
	newPatients := map[string]bool{}
	for _, e := range entries {
		en, _ := e.(map[string]any)
		req, _ := en["request"].(map[string]any)
		res, _ := en["resource"].(map[string]any)
		if m, _ := req["method"].(string); m == "POST" && fhir.ResourceType(res) == "Patient" {
			if fu, _ := en["fullUrl"].(string); fu != "" {
				newPatients[fu] = true
			}
		}
	}
	for i, e := range entries {
		en, _ := e.(map[string]any)
		req, _ := en["request"].(map[string]any)
		res, _ := en["resource"].(map[string]any)
		method, _ := req["method"].(string)
		u, _ := req["url"].(string)
		refuse := func(why string) error {
			return fhir.Errorf(fhir.EForbidden, "Bundle.entry["+strconv.Itoa(i)+"]", "%s: the whole bundle is refused", why)
		}
		if method == "GET" || method == "HEAD" {
			continue // answered through the access filter
		}
		if strings.ContainsAny(u, "?") || req["ifMatch"] != nil && method == "DELETE" {
			return false, refuse("conditional updates and deletes are not available under access control")
		}
		if req["ifNoneExist"] != nil {
			if method != "POST" || !searchable {
				return false, refuse("this conditional entry is not available under access control")
			}
			conditional = true
		}
		segs := strings.Split(strings.Trim(u, "/"), "/")
		var err error
		var refs bool
		switch {
		case method == "POST" && len(segs) == 1:
			refs, err = h.checkEntry(r, dec, c, access.OpCreate, segs[0], "", res, newPatients)
		case method == "PUT" && len(segs) == 2:
			refs, err = h.checkEntry(r, dec, c, access.OpUpdate, segs[0], segs[1], res, newPatients)
		case method == "DELETE" && len(segs) == 2:
			err = h.checkExisting(r, dec, c, access.OpDelete, segs[0], segs[1])
		default:
			return false, refuse("this entry is not available under access control")
		}
		if err != nil {
			var fe *fhir.Error
			msg := "an entry is not allowed"
			ok := asFHIR(err, &fe)
			if ok && fe.Kind != fhir.EForbidden && fe.Kind != fhir.ENotFound {
				return false, err
			}
			if ok && fe.Kind == fhir.EForbidden && strings.Contains(fe.Error(), "conditional reference") {
				msg = "a conditional reference to a Patient is not available under access control"
			}
			return false, refuse(msg)
		}
		if refs {
			if !searchable {
				return false, refuse("conditional references are not available to a caller whose view is too wide to search")
			}
			conditional = true
		}
	}
	return conditional, nil
}

func asFHIR(err error, fe **fhir.Error) bool {
	e, ok := err.(*fhir.Error)
	*fe = e
	return ok
}

// conditionalRefs reports whether any reference in v is conditional
// (Practitioner?identifier=...), and whether one of them is to a Patient
// (its target decides whose record the resource is in).
func conditionalRefs(v any) (found, toPatient bool) {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["reference"].(string); ok {
			if typ, _, cond := strings.Cut(s, "?"); cond {
				found = true
				// Patient?..., Patient/?... or an absolute URL ending in
				// /Patient?...: the last path segment names the type.
				typ = strings.TrimSuffix(typ, "/")
				typ = typ[strings.LastIndexByte(typ, '/')+1:]
				toPatient = toPatient || typ == "Patient" || typ == ""
			}
		}
		for _, c := range x {
			a, p := conditionalRefs(c)
			found, toPatient = found || a, toPatient || p
		}
	case []any:
		for _, c := range x {
			a, p := conditionalRefs(c)
			found, toPatient = found || a, toPatient || p
		}
	}
	return found, toPatient
}

// refersTo reports whether r references one of the fullUrls.
func refersTo(v any, urls map[string]bool) bool {
	if len(urls) == 0 {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["reference"].(string); ok && urls[s] {
			return true
		}
		for _, c := range x {
			if refersTo(c, urls) {
				return true
			}
		}
	case []any:
		for _, c := range x {
			if refersTo(c, urls) {
				return true
			}
		}
	}
	return false
}

// isAccessOp reports whether r is one of the access model's own
// operations: POST /fhir/Patient/{id}/$break-glass and
// /$claim-relationship, GET /fhir/$access-alerts.
func isAccessOp(r *http.Request) bool {
	p := r.URL.Path
	return r.Method == http.MethodPost && strings.HasPrefix(p, "/fhir/Patient/") && (strings.HasSuffix(p, "/$break-glass") || strings.HasSuffix(p, "/$claim-relationship")) ||
		r.Method == http.MethodGet && p == "/fhir/$access-alerts"
}

// accessOp answers the access model's own operations.
func (h *handler) accessOp(w http.ResponseWriter, r *http.Request, c *access.Caller) {
	dec := h.decider()
	ctx := r.Context()
	if r.URL.Path == "/fhir/$access-alerts" {
		h.accessAlerts(w, r, dec, c)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/fhir/Patient/")
	id, opName, _ := strings.Cut(id, "/")
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var in struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name        string `json:"name"`
			ValueCode   string `json:"valueCode"`
			ValueString string `json:"valueString"`
		} `json:"parameter"`
	}
	if json.Unmarshal(body, &in) != nil || in.ResourceType != "Parameters" {
		h.fail(w, r, fhir.Invalid("", "send a Parameters resource with a reason (valueCode) and a text (valueString)"))
		return
	}
	var reason, text string
	for _, p := range in.Parameter {
		switch p.Name {
		case "reason":
			reason = p.ValueCode
		case "text":
			text = p.ValueString
		}
	}
	exists := func() bool { return h.exists(ctx, "Patient", id) }
	var until time.Time
	if opName == "$break-glass" {
		until, err = dec.BreakGlass(ctx, c, id, reason, text, exists)
	} else {
		until, err = dec.SelfClaim(ctx, c, id, reason, text, exists)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Its audit entry is flagged for review like the reads it opens, and
	// records the reason given as its purpose of use.
	n := noteOf(r)
	n.addPatients(id)
	n.setPurpose(reason)
	if opName == "$break-glass" {
		n.addFlags(audit.FlagBreakGlass)
	} else {
		n.addFlags(audit.FlagSelfClaimed)
	}
	h.log.LogAttrs(ctx, slog.LevelWarn, "access granted outside a recorded relationship",
		slog.String("request_id", stateOf(r).id), slog.String("operation", opName),
		slog.String("principal", c.User), slog.String("patient", id), slog.String("reason", reason))
	h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": []any{
		fhir.Object{"name": "expires", "valueInstant": until.UTC().Format(time.RFC3339)},
	}})
}

// narrowing says what a read or search can touch, so that the caller's
// filter carries only that (see access.Narrow). A read of Type/id (and its
// history) is about the people its current version refers to, an
// over-approximation of its compartments, and about its type and
// meta.source: safe, because the database still checks the real
// compartment, source and label rows against the narrowed filter.
func (h *handler) narrowing(r *http.Request, op rune) (access.Narrow, error) {
	var n access.Narrow
	if op != access.OpRead && op != access.OpSearch {
		return n, nil
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	q := r.URL.Query() // once: parsing it is a few microseconds of a search
	// Only a GET says in its URL everything it asks for: a POST _search
	// carries its parameters (an _include, say) in the body.
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && len(segs) >= 1 && segs[0] != "" &&
		!strings.HasPrefix(segs[0], "_") && !strings.HasPrefix(segs[0], "$") && len(segs) != 3 &&
		!(len(segs) == 2 && segs[1] == "_search") && !reachesOtherTypes(q) {
		n.Types = []string{segs[0]}
	}
	switch {
	case len(segs) >= 3 && segs[0] == "Patient" && segs[2] != "_history":
		n.Patients = []string{segs[1]} // a compartment search or $everything
	case op == access.OpRead && len(segs) >= 2:
		if len(segs) == 2 {
			return n, nil // a read by id is decided on the version read (accessService.Read)
		}
		v, err := h.rawRead(r.Context(), segs[0], segs[1])
		if err != nil || v.Body == nil {
			n.Patients = []string{} // missing or gone: the engine answers, about nobody
			return n, nil
		}
		var people []string
		if segs[0] == "Patient" {
			people = append(people, segs[1])
		}
		n.Patients = patientRefs(v.Body, people)
		if segs[0] != "Patient" || len(segs) == 2 {
			n.Source, n.Known = metaSource(v.Body)
		}
	case op == access.OpSearch && len(segs) == 1 && r.Method == http.MethodGet:
		var people []string
		for _, name := range []string{"subject", "patient"} {
			for _, v := range q[name] {
				for _, one := range strings.Split(v, ",") {
					id, ok := strings.CutPrefix(one, "Patient/")
					if !ok && name == "patient" {
						id, ok = one, one != "" && !strings.Contains(one, "/")
					}
					if !ok || id == "" {
						return n, nil
					}
					people = append(people, id)
				}
			}
		}
		if len(people) > 0 && len(q["subject"])+len(q["patient"]) == 1 {
			n.Patients = people
			// subject=Patient/x or patient=x, where that parameter places
			// the type in the Patient compartment: every match is in x's.
			param := "subject"
			if len(q["patient"]) == 1 {
				param = "patient"
			}
			if len(people) == 1 && len(n.Types) == 1 && slices.Contains(r4.PatientCompartment(n.Types[0]), param) {
				sp := r4.SearchParams(n.Types[0])[param]
				n.InCompartment = sp != nil && slices.Equal(sp.Targets, []string{"Patient"}) || param == "subject"
			}
		}
	}
	return n, nil
}

// reachesOtherTypes reports whether a search can return or test resources
// of other types than its own: includes, chains and _has, whose targets the
// filter must admit by their own types.
func reachesOtherTypes(q map[string][]string) bool {
	for k := range q {
		if strings.HasPrefix(k, "_include") || strings.HasPrefix(k, "_revinclude") || strings.HasPrefix(k, "_has") || strings.Contains(k, ".") {
			return true
		}
	}
	return false
}

// metaSource returns the meta.source of a stored resource.
func metaSource(body []byte) (string, bool) {
	var r struct {
		Meta struct {
			Source string `json:"source"`
		} `json:"meta"`
	}
	if json.Unmarshal(body, &r) != nil {
		return "", false
	}
	return r.Meta.Source, true
}

// patientRefs appends the ids of every Patient a resource refers to
// (relative or absolute literal references).
func patientRefs(body []byte, out []string) []string {
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`Patient/`))
		if j < 0 {
			return out
		}
		start := i + j + len("Patient/")
		end := start
		for end < len(body) && (body[end] >= 'a' && body[end] <= 'z' || body[end] >= 'A' && body[end] <= 'Z' || body[end] >= '0' && body[end] <= '9' || body[end] == '-' || body[end] == '.') {
			end++
		}
		if end > start {
			out = append(out, string(body[start:end]))
		}
		i = end
	}
}

// isReadByID reports whether r is GET or HEAD /fhir/{type}/{id}.
func isReadByID(r *http.Request) bool {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	return len(segs) == 2 && !strings.HasPrefix(segs[1], "_") && !strings.HasPrefix(segs[1], "$") && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}
