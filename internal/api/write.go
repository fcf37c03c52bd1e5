package api

import (
	"net/http"
	"strconv"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// create is POST /fhir/{type}, conditional when If-None-Exist is sent.
func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := parsePrefer(r)
	out, err := h.svc.Create(r.Context(), typ, body, h.writeOptions(r, p))
	h.answerWrite(w, r, p, out, err)
}

// update is PUT /fhir/{type}/{id}; with a new id it creates (update as
// create).
func (h *handler) update(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := parsePrefer(r)
	out, err := h.svc.Update(r.Context(), typ, r.PathValue("id"), body, h.writeOptions(r, p))
	h.answerWrite(w, r, p, out, err)
}

// conditionalUpdate is PUT /fhir/{type}?criteria.
func (h *handler) conditionalUpdate(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := parsePrefer(r)
	out, err := h.svc.ConditionalUpdate(r.Context(), typ, stateOf(r).query, body, h.writeOptions(r, p))
	h.answerWrite(w, r, p, out, err)
}

// patch is PATCH /fhir/{type}/{id} with a JSON Patch document.
func (h *handler) patch(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	body, err := h.readBody(w, r, patchTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := parsePrefer(r)
	out, err := h.svc.Patch(r.Context(), typ, r.PathValue("id"), body, h.writeOptions(r, p))
	h.answerWrite(w, r, p, out, err)
}

// conditionalPatch is PATCH /fhir/{type}?criteria.
func (h *handler) conditionalPatch(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	body, err := h.readBody(w, r, patchTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := parsePrefer(r)
	out, err := h.svc.ConditionalPatch(r.Context(), typ, stateOf(r).query, body, h.writeOptions(r, p))
	h.answerWrite(w, r, p, out, err)
}

// delete is DELETE /fhir/{type}/{id}.
func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	p := parsePrefer(r)
	var before *store.Version
	if h.audit != nil {
		// Whose record it was in: the deleted version has no body to say.
		before, _ = h.rawRead(r.Context(), typ, r.PathValue("id"))
	}
	out, err := h.svc.Delete(r.Context(), typ, r.PathValue("id"), h.writeOptions(r, p))
	if err == nil && !out.NoOp {
		h.noteVersion(r, before, true)
	}
	h.answerDelete(w, r, p, out, err)
}

// conditionalDelete is DELETE /fhir/{type}?criteria.
func (h *handler) conditionalDelete(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	p := parsePrefer(r)
	out, err := h.svc.ConditionalDelete(r.Context(), typ, stateOf(r).query, h.writeOptions(r, p))
	h.answerDelete(w, r, p, out, err)
}

// maxWarningHeaders bounds the Warning headers of one response; the full
// list is always available with Prefer: return=OperationOutcome.
const maxWarningHeaders = 20

// answerWrite turns the outcome of a create, update or patch into a
// response: 201 with Location for a creation, else 200; ETag and
// Last-Modified of the version written; a body chosen by Prefer return.
//
// Warnings (elements dropped under lenient handling) are reported in every
// case: with return=OperationOutcome as issues of the body; always also as
// HTTP Warning headers with code 299 ("miscellaneous persistent warning"),
// one per issue, so a client that keeps the default representation still
// sees what was dropped without the resource body being changed.
func (h *handler) answerWrite(w http.ResponseWriter, r *http.Request, p prefer, out *engine.Outcome, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := out.Version
	h.noteVersion(r, v, true)
	status := http.StatusOK
	if out.Created {
		status = http.StatusCreated
	}
	hd := w.Header()
	if v != nil {
		versionHeaders(w, v)
		if out.Created {
			hd.Set("Location", h.versionURL(v))
		}
		hd.Set("Content-Location", h.versionURL(v))
	}
	warningHeaders(w, out.Warnings)
	if p.returnOK {
		hd.Set("Preference-Applied", "return="+p.ret)
	}
	switch {
	case p.ret == "minimal":
		w.WriteHeader(status)
	case p.ret == "OperationOutcome":
		h.sendObject(w, r, status, writeOutcome(out))
	case v == nil || v.Deleted || len(v.Body) == 0:
		h.sendObject(w, r, status, writeOutcome(out))
	default:
		h.sendRaw(w, r, status, v.Body)
	}
}

// answerDelete answers a delete: 200 with an OperationOutcome saying what
// happened, or 204 for return=minimal.
func (h *handler) answerDelete(w http.ResponseWriter, r *http.Request, p prefer, out *engine.Outcome, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if v := out.Version; v != nil && !out.NoOp {
		w.Header().Set("ETag", etag(v))
	}
	warningHeaders(w, out.Warnings)
	if p.ret == "minimal" {
		w.Header().Set("Preference-Applied", "return=minimal")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.sendObject(w, r, http.StatusOK, writeOutcome(out))
}

// writeOutcome is the OperationOutcome of a write: one information issue
// saying what was done, then the warnings.
func writeOutcome(out *engine.Outcome) fhir.Object {
	msg := "done"
	if v := out.Version; v != nil {
		ref := v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
		switch {
		case out.NoOp && v.Deleted:
			msg = "nothing to delete"
		case out.NoOp:
			msg = "no change: " + ref + " already matches"
		case v.Deleted:
			msg = "deleted " + v.Type + "/" + v.ID
		case out.Created:
			msg = "created " + ref
		default:
			msg = "updated " + ref
		}
	} else if out.NoOp {
		msg = "nothing to delete"
	}
	issues := append([]fhir.Issue{{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: msg}}, out.Warnings...)
	return fhir.OutcomeOf(issues...)
}

// warningHeaders adds one RFC 7234 Warning header (code 299) per issue.
func warningHeaders(w http.ResponseWriter, issues []fhir.Issue) {
	hd := w.Header()
	for i, is := range issues {
		if i == maxWarningHeaders {
			hd.Add("Warning", `299 sharedcare "`+strconv.Itoa(len(issues)-i)+` more warning(s): ask with Prefer: return=OperationOutcome"`)
			break
		}
		text := is.Diagnostics
		if is.Expression != "" {
			text += " (at " + is.Expression + ")"
		}
		hd.Add("Warning", `299 sharedcare "`+quoteSafe(text)+`"`)
	}
}
