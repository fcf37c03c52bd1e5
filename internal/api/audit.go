package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// heldResponse holds a response (status, headers and body) until the
// auditFacts's audit entry is durable: nothing reaches the client before
// the entry is recorded, so that a failed Record discloses nothing (fail
// closed, issue 7).
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newHeldResponse() *heldResponse { return &heldResponse{header: http.Header{}} }

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// Status is the held status, 200 when the handler wrote nothing.
func (h *heldResponse) Status() int {
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}

// send writes the held response to w.
func (h *heldResponse) send(w http.ResponseWriter) error {
	for k, vs := range h.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(h.Status())
	_, err := w.Write(h.body.Bytes())
	return err
}

// auditUnavailable answers a request whose audit entry could not be made
// durable.
func auditUnavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", contentTypeFHIR)
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"the audit log is unavailable: the request was not served"}]}`))
}

// secretParams are query parameters that carry credentials; they never
// reach an AuditEvent.
var secretParams = []string{"access_token", "code", "client_secret", "password", "refresh_token", "id_token", "client_assertion"}

// auditQuery is the query of a search as recorded in its AuditEvent, with
// every credential-bearing parameter removed.
func auditQuery(path string, q url.Values) string {
	c := url.Values{}
	for k, vs := range q {
		c[k] = vs
	}
	for _, k := range secretParams {
		c.Del(k)
	}
	if len(c) == 0 {
		return path
	}
	return path + "?" + c.Encode()
}

// Audited makes hd, a handler from New, record one audit entry per /fhir
// interaction through rec, holding each response until its entry is
// durable. node names this node in AuditEvent.source.
func Audited(hd http.Handler, rec audit.Recorder, node string) http.Handler {
	if h, ok := hd.(*handler); ok {
		h.audit, h.node = rec, node
		// The access decisions' cache of the facts of each version when
		// there is one: a read is then decided and audited on one extraction.
		switch s := h.svc.(type) {
		case *accessService:
			h.facts = s.factCache
		case *accessServiceMPI:
			h.facts = s.factCache
		default:
			h.facts = newFactCache(h.cfg.BaseURL)
		}
	}
	return hd
}

// auditPatientsOf are the Patient ids a request names in its path or in
// its patient/subject parameters: whose record it asked for, which an
// entry names whether or not anything was disclosed (a refused look at a
// record is in the person's view too). What was actually disclosed or
// written is added by the actions (noteVersion, noteBundle, noteWritten).
func auditPatientsOf(path string, q url.Values) []string {
	var ids []string
	segs := strings.Split(strings.Trim(strings.TrimPrefix(path, "/fhir"), "/"), "/")
	if len(segs) >= 2 && segs[0] == "Patient" && segs[1] != "" && !strings.HasPrefix(segs[1], "$") && !strings.HasPrefix(segs[1], "_") {
		ids = append(ids, segs[1])
	}
	for _, k := range []string{"patient", "subject"} {
		for _, v := range q[k] {
			for _, one := range strings.Split(v, ",") {
				one = strings.TrimPrefix(one, "Patient/")
				if one != "" && !strings.Contains(one, "/") && !strings.Contains(one, "|") {
					ids = append(ids, one)
				}
			}
		}
	}
	return ids
}

// interactionOf names the FHIR interaction (restful-interaction code, or
// the operation's name) of a request and its AuditEvent action: reads R,
// searches, histories and operations E (IHE BALP), writes C, U and D; an
// update that created the resource is C.
func interactionOf(method, path string, status int) (subtype, action string) {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(path, "/fhir"), "/"), "/")
	if segs[0] == "" {
		segs = nil
	}
	get := method == http.MethodGet || method == http.MethodHead
	write := func() (string, string) {
		switch method {
		case http.MethodPost:
			return "create", audit.ActionCreate
		case http.MethodPut:
			if status == http.StatusCreated {
				return "update", audit.ActionCreate
			}
			return "update", audit.ActionUpdate
		case http.MethodPatch:
			return "patch", audit.ActionUpdate
		case http.MethodDelete:
			return "delete", audit.ActionDelete
		}
		return "operation", audit.ActionExecute
	}
	last := ""
	if len(segs) > 0 {
		last = segs[len(segs)-1]
	}
	if strings.HasPrefix(last, "$") && len(segs) <= 3 {
		return last, audit.ActionExecute
	}
	switch len(segs) {
	case 0:
		if get {
			return "search-system", audit.ActionExecute
		}
		return "batch", audit.ActionExecute // transaction when the Bundle says so (noteBundle)
	case 1:
		switch {
		case segs[0] == "metadata":
			return "capabilities", audit.ActionRead
		case segs[0] == "_history":
			return "history-system", audit.ActionExecute
		case segs[0] == "_search":
			return "search-system", audit.ActionExecute
		case get:
			return "search-type", audit.ActionExecute
		}
		return write()
	case 2:
		switch {
		case segs[1] == "_search":
			return "search-type", audit.ActionExecute
		case segs[1] == "_history":
			return "history-type", audit.ActionExecute
		case get:
			return "read", audit.ActionRead
		}
		return write()
	case 3:
		if segs[2] == "_history" {
			return "history-instance", audit.ActionExecute
		}
		return "search-type", audit.ActionExecute // a Patient compartment search
	case 4:
		if segs[2] == "_history" {
			return "vread", audit.ActionRead
		}
	}
	return "operation", audit.ActionExecute
}

// Subtypes of the /auth endpoints' entries. Revoking a token ends the
// whole grant it belongs to (smart.Server.Revoke): it is how an app logs
// its user out.
// A login through the external OpenID Connect provider ends at its
// callback: the provider vouched for the user there, and the code the app
// then redeems names them in the token request's entry.
var authSubtypes = map[string]string{
	"POST /auth/login":        "login",
	"GET /auth/oidc/callback": "login",
	"POST /auth/token":        "token",
	"POST /auth/revoke":       "logout",
}

// isAuditedAuth reports whether r is one of the /auth requests that are
// audited: a login, a token request, a revocation.
func isAuditedAuth(r *http.Request) bool {
	return authSubtypes[r.Method+" "+r.URL.Path] != ""
}

// purposeOf is the purpose of use an entry records when the action set
// none (HL7 v3 ActReason): a person or their proxy asking for their own
// record is PATRQT, the node operator HOPERAT, staff and their systems
// TREAT (the policy shares for direct care only, docs/ACCESS.md);
// break-glass disclosures are noted as ETREAT by noteDisclosure.
func purposeOf(p *auth.Principal) string {
	if p == nil {
		return ""
	}
	switch p.Kind {
	case auth.KindPatient:
		return "PATRQT"
	case auth.KindAdmin:
		return "HOPERAT"
	}
	return "TREAT"
}

// failureDetail is why a held response failed, from its OperationOutcome
// (or OAuth error), without any of the request's credentials.
func failureDetail(r *http.Request, held *heldResponse, q url.Values) string {
	if held.Status() < 400 || held.Header().Get("Content-Encoding") != "" {
		return ""
	}
	var out struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(held.body.Bytes(), &out) != nil {
		return ""
	}
	d := out.Description
	if len(out.Issue) > 0 {
		d = out.Issue[0].Diagnostics
	}
	secrets := []string{}
	if _, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok {
		secrets = append(secrets, strings.TrimSpace(tok))
	}
	for _, k := range secretParams {
		secrets = append(secrets, q[k]...)
	}
	for _, s := range secrets {
		if len(s) >= 4 {
			d = strings.ReplaceAll(d, s, "[redacted]")
		}
	}
	if len(d) > 300 {
		d = d[:300] + "..."
	}
	return d
}

// auditRelease records the interaction held in held and sends it to rw:
// first the entries of a bundle's entries, then the interaction's own;
// the response is released only once all are durable.
func (h *handler) auditRelease(rw http.ResponseWriter, r *http.Request, st *state, held *heldResponse) {
	unavailable := auditUnavailable
	if strings.HasPrefix(r.URL.Path, "/auth/") {
		unavailable = oauthUnavailable
	}
	n := st.note.view()
	q, _ := url.ParseQuery(r.URL.RawQuery)
	status := held.Status()
	now := time.Now()
	f := auditFacts{Status: status, Time: now, Node: h.node, RequestID: st.id, Purpose: n.purpose, Restrict: n.restricted}
	if sub := authSubtypes[r.Method+" "+r.URL.Path]; sub != "" {
		// The path alone: an OpenID Connect callback's query carries a code.
		f.Subtype, f.Action, f.Query = sub, audit.ActionExecute, r.URL.Path
	} else {
		f.Subtype, f.Action = interactionOf(r.Method, r.URL.Path, status)
		f.Query = auditQuery(r.URL.Path, q)
		f.Patients = auditPatientsOf(r.URL.Path, q)
	}
	if n.subtype != "" {
		f.Subtype = n.subtype
	}
	for _, p := range n.patients {
		if !slices.Contains(f.Patients, p) {
			f.Patients = append(f.Patients, p)
		}
	}
	f.Resources = n.resources
	f.Flags = n.flags
	f.Detail = failureDetail(r, held, q)
	if p := st.principal; p != nil {
		f.User, f.Role, f.Org, f.Client = p.Subject, p.Role, p.Organisation, p.Client
	} else if w := n.who; w != (who{}) {
		f.User, f.Role, f.Org, f.Client = w.user, w.role, w.org, w.client
	}
	if f.Purpose == "" {
		f.Purpose = purposeOf(st.principal)
	}
	e, err := f.entry()
	if err == nil {
		err = n.err
	}
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "audit entry incomplete: request refused",
			slog.String("request_id", st.id), slog.String("error", err.Error()))
		unavailable(rw)
		return
	}
	refuse := func(err error) {
		h.log.LogAttrs(r.Context(), slog.LevelError, "audit record failed: request refused",
			slog.String("request_id", st.id), slog.String("error", err.Error()))
		unavailable(rw)
	}
	var all []*audit.Entry
	for _, x := range n.extra {
		x.Time, x.Node, x.RequestID = now, f.Node, f.RequestID
		x.User, x.Role, x.Org, x.Client = f.User, f.Role, f.Org, f.Client
		if x.Purpose == "" {
			x.Purpose = f.Purpose
		}
		xe, err := x.entry()
		if err != nil {
			refuse(err)
			return
		}
		all = append(all, xe)
	}
	// A bundle's entries and the interaction's own, in one write.
	if err := h.audit.RecordAll(r.Context(), append(all, e)); err != nil {
		refuse(err)
		return
	}
	if err := held.send(rw); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "response not sent", slog.String("request_id", st.id), slog.String("error", err.Error()))
	}
}

// oauthUnavailable is auditUnavailable for the OAuth endpoints, in OAuth's
// error format (RFC 6749 section 5.2): no token leaves without its entry.
func oauthUnavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"the audit log is unavailable: the request was not served"}`))
}

// isAuditEventWrite reports whether r would write an AuditEvent through the
// resource API: the audit log is written only by the node itself.
func isAuditEventWrite(r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	rest := strings.TrimPrefix(r.URL.Path, "/fhir/")
	return rest == "AuditEvent" || strings.HasPrefix(rest, "AuditEvent/")
}

// What an interaction disclosed or wrote, as its audit entry records it
// (issue 7): the people are those whose record each resource is in (its
// Patient compartments, as the access decision saw them), not only those
// its URL names; the flags are the circumstances of the access decision.

// disclosure is one resource as an audit entry records it.
type disclosure struct {
	ref        string // Type/id
	patients   []string
	flags      []string
	restricted bool
}

// callerOf returns the access model's caller of r: nil for the node
// operator, or on a node without access control.
func callerOf(r *http.Request) *access.Caller {
	c, _ := r.Context().Value(callerKey{}).(*access.Caller)
	return c
}

// circumstances returns the caller's circumstances for reading or for
// writing, asked of the decider once per request.
func (h *handler) circumstances(r *http.Request, write bool) *access.Circumstances {
	n, i := noteOf(r), 0
	if write {
		i = 1
	}
	n.mu.Lock()
	cs := n.circ[i]
	n.mu.Unlock()
	if cs != nil {
		return cs
	}
	c, dec := callerOf(r), h.decider()
	if c == nil || dec == nil {
		cs = &access.Circumstances{}
	} else {
		op := access.OpRead
		if write {
			op = access.OpUpdate
		}
		var err error
		if cs, err = dec.Circumstances(r.Context(), c, op); err != nil {
			n.fail(err)
			cs = &access.Circumstances{}
		}
	}
	n.mu.Lock()
	n.circ[i] = cs
	n.mu.Unlock()
	return cs
}

// disclosureOf is the disclosure of the resource typ/id with facts vf.
func (h *handler) disclosureOf(r *http.Request, typ, id string, vf *versionFacts, write bool) disclosure {
	d := disclosure{ref: typ + "/" + id, patients: vf.patients}
	x := h.circumstances(r, write).Of(vf.patients, vf.labels)
	if x.BreakGlass {
		d.flags = append(d.flags, audit.FlagBreakGlass)
	}
	if x.ObjectionOverride {
		d.flags = append(d.flags, audit.FlagObjectionOverride)
	}
	if x.SelfClaimed {
		d.flags = append(d.flags, audit.FlagSelfClaimed)
	}
	if x.Labelled {
		d.flags = append(d.flags, audit.FlagLabelled)
	}
	d.restricted = x.Restricted
	return d
}

// note adds d to the interaction's note. A record opened by break-glass is
// read for emergency treatment (ETREAT), whatever the caller's default.
func (d disclosure) note(n *auditNote) {
	n.addResources(d.ref)
	n.addPatients(d.patients...)
	n.addFlags(d.flags...)
	if d.restricted {
		n.restrict()
	}
	if slices.Contains(d.flags, audit.FlagBreakGlass) {
		n.setPurpose("ETREAT")
	}
}

// noteVersion notes a version read (read, vread) or written (create,
// update, patch, and the version a delete removed).
func (h *handler) noteVersion(r *http.Request, v *store.Version, write bool) {
	if h.audit == nil || v == nil || len(v.Body) == 0 {
		return
	}
	vf, err := h.facts.facts(v)
	if err != nil {
		noteOf(r).fail(err)
		return
	}
	h.disclosureOf(r, v.Type, v.ID, vf, write).note(noteOf(r))
}

// entriesOf returns the entries of a Bundle the engine built.
func entriesOf(b fhir.Object) []fhir.Object {
	var out []fhir.Object
	switch es := b["entry"].(type) {
	case []any:
		for _, e := range es {
			if o, ok := e.(fhir.Object); ok {
				out = append(out, o)
			}
		}
	case []fhir.Object:
		out = es
	}
	return out
}

// objectOf returns an entry's resource as an object: the engine embeds
// stored resources as raw JSON and shaped ones (_summary, _elements) as
// objects.
func objectOf(v any) (fhir.Object, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case fhir.Object:
		return x, nil
	case json.RawMessage:
		return fhir.ParseObject(x, fhir.DefaultMaxDepth)
	case []byte:
		return fhir.ParseObject(x, fhir.DefaultMaxDepth)
	}
	return fhir.ParseObject(fhir.Marshal(v), fhir.DefaultMaxDepth)
}

// bundleDisclosures returns the disclosures of every resource in b (a
// searchset, a history, $everything's answer, a batch GET's answer), its
// _include and _revinclude entries too; the Bundles answering a batch's
// searches are followed, stored Bundle resources are not.
func (h *handler) bundleDisclosures(r *http.Request, b fhir.Object, write bool) ([]disclosure, error) {
	var out []disclosure
	var walk func(b fhir.Object, depth int) error
	walk = func(b fhir.Object, depth int) error {
		for _, e := range entriesOf(b) {
			if s, _ := e["search"].(fhir.Object); s != nil && s["mode"] == "outcome" {
				continue
			}
			res, err := objectOf(e["resource"])
			if err != nil {
				return err
			}
			typ := fhir.ResourceType(res)
			switch {
			case res == nil || typ == "" || typ == "OperationOutcome":
			case typ == "Bundle" && depth == 0 && (b["type"] == "batch-response" || b["type"] == "transaction-response"):
				if err := walk(res, depth+1); err != nil {
					return err
				}
			default:
				id, _ := res["id"].(string)
				out = append(out, h.disclosureOf(r, typ, id, h.facts.factsOfObject(typ, res), write))
			}
		}
		return nil
	}
	return out, walk(b, 0)
}

// noteBundle notes what a Bundle the service answered with disclosed. A
// batch or transaction response is noted entry by entry (noteBundleEntries).
func (h *handler) noteBundle(r *http.Request, b fhir.Object) {
	if h.audit == nil || fhir.ResourceType(b) != "Bundle" || b["type"] == "batch-response" || b["type"] == "transaction-response" {
		return
	}
	ds, err := h.bundleDisclosures(r, b, false)
	if err != nil {
		noteOf(r).fail(err)
		return
	}
	n := noteOf(r)
	for _, d := range ds {
		d.note(n)
	}
}

// bundlePlan is what the audit learns of a batch or transaction before it
// runs: its entries' requests, and the versions its deletes will remove
// (afterwards they have no body to say whose record they were in).
type bundlePlan struct {
	entries []engine.BundleRequest
	deleted map[int]*store.Version
}

// auditBundleBefore returns r's context for the engine's Bundle and the
// plan the engine fills in as it reads the body (engine.WithBundleSeen),
// so the bundle is parsed once for both; nil on a node without audit.
func (h *handler) auditBundleBefore(r *http.Request) (context.Context, *bundlePlan) {
	if h.audit == nil {
		return r.Context(), nil
	}
	p := &bundlePlan{deleted: map[int]*store.Version{}}
	return engine.WithBundleSeen(r.Context(), func(kind string, reqs []engine.BundleRequest) {
		noteOf(r).setSubtype(kind)
		p.entries = reqs
		for i, e := range reqs {
			if !strings.EqualFold(e.Method, http.MethodDelete) {
				continue
			}
			typ, id, ok := strings.Cut(entryPath(e.URL), "/")
			if !ok || strings.ContainsAny(id, "/?") {
				continue
			}
			if v, err := h.rawRead(r.Context(), typ, id); err == nil && len(v.Body) > 0 {
				p.deleted[i] = v
			}
		}
	}), p
}

// entryPath is a Bundle entry's request.url relative to the FHIR base,
// without its query.
func entryPath(u string) string {
	u, _, _ = strings.Cut(u, "?")
	if i := strings.Index(u, "/fhir/"); i >= 0 && strings.Contains(u, "://") {
		u = u[i+len("/fhir/"):]
	}
	return strings.Trim(u, "/")
}

// noteBundleEntries adds one entry per entry of a batch or transaction
// that ran (b is its response), each with its own interaction, outcome,
// resources, people and flags; the interaction's own entry names them all.
// A bundle refused or failed as a whole has only the interaction's entry.
func (h *handler) noteBundleEntries(r *http.Request, p *bundlePlan, b fhir.Object) {
	if p == nil {
		return
	}
	n := noteOf(r)
	resp := entriesOf(b)
	for i, re := range p.entries {
		if i >= len(resp) {
			break
		}
		method := strings.ToUpper(re.Method)
		path := "/fhir/" + entryPath(re.URL)
		rs, _ := resp[i]["response"].(fhir.Object)
		line, _ := rs["status"].(string)
		status, _ := strconv.Atoi(strings.Fields(line + " 0")[0])
		f := auditFacts{Status: status}
		f.Subtype, f.Action = interactionOf(method, path, status)
		_, rawq, _ := strings.Cut(re.URL, "?")
		q, _ := url.ParseQuery(rawq)
		f.Patients = auditPatientsOf(path, q)
		if method == http.MethodGet || method == http.MethodHead {
			f.Query = auditQuery(path, q)
		}
		write := method != http.MethodGet && method != http.MethodHead
		var ds []disclosure
		switch res, err := objectOf(resp[i]["resource"]); {
		case err != nil:
			n.fail(err)
			return
		case status >= 400:
		case method == http.MethodDelete:
			if v := p.deleted[i]; v != nil {
				vf, err := h.facts.facts(v)
				if err != nil {
					n.fail(err)
					return
				}
				ds = append(ds, h.disclosureOf(r, v.Type, v.ID, vf, true))
			}
		case fhir.ResourceType(res) == "Bundle" && !write:
			if ds, err = h.bundleDisclosures(r, fhir.Object{"type": "batch-response", "entry": []any{fhir.Object{"resource": res}}}, false); err != nil {
				n.fail(err)
				return
			}
		case res != nil && fhir.ResourceType(res) != "OperationOutcome":
			typ := fhir.ResourceType(res)
			id, _ := res["id"].(string)
			ds = append(ds, h.disclosureOf(r, typ, id, h.facts.factsOfObject(typ, res), write))
		}
		if loc, _ := rs["location"].(string); loc != "" && len(ds) == 0 {
			if typ, rest, ok := strings.Cut(entryPath(loc), "/"); ok {
				id, _, _ := strings.Cut(rest, "/")
				f.Resources = append(f.Resources, typ+"/"+id)
				n.addResources(typ + "/" + id)
			}
		}
		for _, d := range ds {
			if len(f.Resources) < maxAuditResources && !slices.Contains(f.Resources, d.ref) {
				f.Resources = append(f.Resources, d.ref)
			}
			for _, pt := range d.patients {
				if !slices.Contains(f.Patients, pt) {
					f.Patients = append(f.Patients, pt)
				}
			}
			for _, fl := range d.flags {
				if !slices.Contains(f.Flags, fl) {
					f.Flags = append(f.Flags, fl)
				}
			}
			f.Restrict = f.Restrict || d.restricted
			if slices.Contains(d.flags, audit.FlagBreakGlass) {
				f.Purpose = "ETREAT"
			}
			d.note(n)
		}
		n.addPatients(f.Patients...)
		n.addEntry(f)
	}
}
