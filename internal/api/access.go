package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/search"
)

// NewWithAccess is New with every /fhir request decided by dec (issue 6):
// the decision becomes the engine's access filter for reads and searches,
// and writes are checked before they reach the engine. The decider travels
// with the verifier because both answer for the caller: one says who they
// are, the other what they may do.
func NewWithAccess(svc Service, verifier Verifier, dec *access.Decider, cfg config.Config, log *slog.Logger) http.Handler {
	return New(svc, &guarded{Verifier: verifier, dec: dec}, cfg, log)
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
	ctx := r.Context()
	readFilter, err := dec.Filter(ctx, c, readOp(op))
	if err != nil {
		h.fail(w, r, err)
		return r, false
	}
	r = r.WithContext(engine.WithAccess(ctx, readFilter))
	if op == opBundle || op == access.OpCreate || op == access.OpUpdate || op == access.OpDelete {
		if err := h.checkWrite(w, r, dec, c, op); err != nil {
			h.fail(w, r, err)
			return r, false
		}
	}
	return r, true
}

// opBundle marks a batch or transaction: each entry is decided.
const opBundle = 'b'

func readOp(op rune) rune {
	if op == access.OpRead {
		return access.OpRead
	}
	return access.OpSearch // searches, and the reads a write or bundle does
}

// interaction names the SMART interaction of a /fhir request. Operations
// the access model cannot decide exactly (conditional writes, whose target
// is found by a search; JSON Patch, whose result is known only after it is
// applied; the master patient index's operations) are refused to everyone
// but the node operator: deny by default.
func interaction(r *http.Request) (rune, error) {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	if segs[0] == "" {
		segs = nil
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	notHere := errorf(fhir.EForbidden, "forbidden", "this interaction is not available under access control")
	for i, s := range segs {
		if strings.HasPrefix(s, "$") && !(s == "$everything" && i == 2) && !(s == "$validate" && i == 1) {
			return 0, notHere
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
		case r.Method == http.MethodPost && r.Header.Get("If-None-Exist") == "":
			return access.OpCreate, nil
		}
		return 0, notHere
	case 2:
		switch {
		case segs[1] == "_search" || segs[1] == "_history" || segs[1] == "$validate":
			return access.OpSearch, nil
		case get:
			return access.OpRead, nil
		case r.Method == http.MethodPut:
			return access.OpUpdate, nil
		case r.Method == http.MethodDelete:
			return access.OpDelete, nil
		}
		return 0, notHere
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
// with the writer's organisation as meta.source, and handed on.
func (h *handler) checkWrite(w http.ResponseWriter, r *http.Request, dec *access.Decider, c *access.Caller, op rune) error {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	if op == access.OpDelete {
		return h.checkExisting(r, dec, c, op, segs[0], segs[1])
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		return err
	}
	res, err := fhir.ParseObject(body, fhir.DefaultMaxDepth)
	if err != nil {
		return fhir.Invalid("", "the body is not a FHIR JSON resource")
	}
	if op == opBundle {
		err = h.checkBundle(r, dec, c, res)
	} else {
		var id string
		if op == access.OpUpdate {
			id = segs[1]
		}
		err = h.checkEntry(r, dec, c, op, segs[0], id, res, nil)
	}
	if err != nil {
		return err
	}
	out := fhir.Marshal(res)
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
	r.Header.Del("Content-Encoding")
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// checkExisting refuses a change to a resource the caller may not change:
// 404 when they cannot see it either (withheld looks like missing), 403
// when they can see but not change it. A resource that does not exist is
// left to the engine (update as create, or 404).
func (h *handler) checkExisting(r *http.Request, dec *access.Decider, c *access.Caller, op rune, typ, id string) error {
	ctx := r.Context()
	if _, err := h.svc.Read(engine.WithAccess(ctx, nil), typ, id); err != nil {
		return nil // missing or gone: nothing to protect; the engine answers
	}
	wf, err := dec.Filter(ctx, c, op)
	if err != nil {
		return err
	}
	if _, err := h.svc.Read(engine.WithAccess(ctx, wf), typ, id); err == nil {
		return nil
	}
	if _, err := h.svc.Read(ctx, typ, id); err == nil {
		return errorf(fhir.EForbidden, "forbidden", "you may not change %s/%s", typ, id)
	}
	return errorf(fhir.ENotFound, "not-found", "%s/%s not found", typ, id)
}

// checkEntry decides one resource to be written (create or update) and
// stamps it with the writer's organisation. newPatients are the fullUrls of
// Patients a bundle creates: a resource about one of them is about a new
// record, not about someone the writer may not see.
func (h *handler) checkEntry(r *http.Request, dec *access.Decider, c *access.Caller, op rune, typ, id string, res fhir.Object, newPatients map[string]bool) error {
	if fhir.ResourceType(res) != typ {
		return nil // the engine refuses the mismatch with its own message
	}
	if op == access.OpUpdate {
		if err := h.checkExisting(r, dec, c, op, typ, id); err != nil {
			return err
		}
	}
	if hasConditionalRef(res) {
		return errorf(fhir.EForbidden, "forbidden", "conditional references are not available under access control")
	}
	var patients []string
	newRecord := false
	if typ == "Patient" && (op == access.OpCreate || !h.exists(r.Context(), typ, id)) {
		newRecord = true // a new record is nobody's yet
	} else {
		for _, cm := range (&search.Indexer{Base: h.cfg.BaseURL}).Index(typ, res).Compartments {
			if cm.Type == "Patient" && cm.ID != "" {
				patients = append(patients, cm.ID)
			}
		}
		newRecord = len(patients) == 0 && refersTo(res, newPatients)
	}
	if err := dec.CheckWrite(r.Context(), c, op, typ, patients, newRecord); err != nil {
		return err
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
	return nil
}

func (h *handler) exists(ctx context.Context, typ, id string) bool {
	_, err := h.svc.Read(engine.WithAccess(ctx, nil), typ, id)
	return err == nil
}

// checkBundle decides every entry of a batch or transaction; one refused
// entry refuses the whole bundle, so a transaction is never half allowed.
func (h *handler) checkBundle(r *http.Request, dec *access.Decider, c *access.Caller, b fhir.Object) error {
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
		if strings.ContainsAny(u, "?") || req["ifNoneExist"] != nil || req["ifMatch"] != nil && method == "DELETE" {
			return refuse("conditional entries are not available under access control")
		}
		segs := strings.Split(strings.Trim(u, "/"), "/")
		var err error
		switch {
		case method == "POST" && len(segs) == 1:
			err = h.checkEntry(r, dec, c, access.OpCreate, segs[0], "", res, newPatients)
		case method == "PUT" && len(segs) == 2:
			err = h.checkEntry(r, dec, c, access.OpUpdate, segs[0], segs[1], res, newPatients)
		case method == "DELETE" && len(segs) == 2:
			err = h.checkExisting(r, dec, c, access.OpDelete, segs[0], segs[1])
		default:
			return refuse("this entry is not available under access control")
		}
		if err != nil {
			var fe *fhir.Error
			msg := "an entry is not allowed"
			if ok := asFHIR(err, &fe); ok && fe.Kind != fhir.EForbidden && fe.Kind != fhir.ENotFound {
				return err
			}
			return refuse(msg)
		}
	}
	return nil
}

func asFHIR(err error, fe **fhir.Error) bool {
	e, ok := err.(*fhir.Error)
	*fe = e
	return ok
}

// hasConditionalRef reports whether any reference in r is conditional
// (Patient?identifier=...): its target is found by a search the access
// filter does not see.
func hasConditionalRef(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["reference"].(string); ok && strings.Contains(s, "?") {
			return true
		}
		for _, c := range x {
			if hasConditionalRef(c) {
				return true
			}
		}
	case []any:
		for _, c := range x {
			if hasConditionalRef(c) {
				return true
			}
		}
	}
	return false
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
		alerts, err := dec.Alerts(ctx, c)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		params := []any{}
		for _, a := range alerts {
			params = append(params, fhir.Object{"name": "alert", "part": []any{
				fhir.Object{"name": "kind", "valueCode": a.Kind},
				fhir.Object{"name": "user", "valueString": a.User},
				fhir.Object{"name": "organisation", "valueString": a.Org},
				fhir.Object{"name": "role", "valueString": a.Role},
				fhir.Object{"name": "patient", "valueReference": fhir.Object{"reference": "Patient/" + a.Patient}},
				fhir.Object{"name": "reason", "valueCode": a.Reason},
				fhir.Object{"name": "text", "valueString": a.Text},
				fhir.Object{"name": "at", "valueInstant": a.At.UTC().Format(time.RFC3339)},
				fhir.Object{"name": "expires", "valueInstant": a.Expires.UTC().Format(time.RFC3339)},
			}})
		}
		h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": params})
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
	if !h.exists(ctx, "Patient", id) {
		h.fail(w, r, errorf(fhir.ENotFound, "not-found", "Patient/%s not found", truncate(id)))
		return
	}
	var until time.Time
	if opName == "$break-glass" {
		until, err = dec.BreakGlass(ctx, c, id, reason, text)
	} else {
		until, err = dec.SelfClaim(ctx, c, id, reason, text)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.LogAttrs(ctx, slog.LevelWarn, "access granted outside a recorded relationship",
		slog.String("request_id", stateOf(r).id), slog.String("operation", opName),
		slog.String("principal", c.User), slog.String("patient", id), slog.String("reason", reason))
	h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": []any{
		fhir.Object{"name": "expires", "valueInstant": until.UTC().Format(time.RFC3339)},
	}})
}
