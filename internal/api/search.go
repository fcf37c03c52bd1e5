package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// searchContext carries the request's handling preference to Search and
// History. For searches lenient is FHIR's default (unknown parameters are
// ignored and reported); Prefer: handling=strict makes them a 400.
func searchContext(r *http.Request) context.Context {
	return engine.WithHandling(r.Context(), parsePrefer(r).strict)
}

// searchSystem is GET /fhir?params.
func (h *handler) searchSystem(w http.ResponseWriter, r *http.Request) {
	b, err := h.svc.Search(searchContext(r), "", stateOf(r).query)
	h.answerBundle(w, r, b, err)
}

// searchType is GET /fhir/{type}?params.
func (h *handler) searchType(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	b, err := h.svc.Search(searchContext(r), typ, stateOf(r).query)
	h.answerBundle(w, r, b, err)
}

// searchTypePost is POST /fhir/{type}/_search with the parameters in a form
// body (and possibly also in the URL), for searches too long or too
// sensitive for a URL.
func (h *handler) searchTypePost(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	q := url.Values{}
	for k, vs := range stateOf(r).query {
		q[k] = append(q[k], vs...)
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		body, err := h.readAny(w, r, formTypes, true)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			h.fail(w, r, fhir.Invalid("", "the form body is malformed"))
			return
		}
		for k, vs := range form {
			q[k] = append(q[k], vs...)
		}
	}
	b, err := h.svc.Search(searchContext(r), typ, q)
	h.answerBundle(w, r, b, err)
}

// historySystem is GET /fhir/_history.
func (h *handler) historySystem(w http.ResponseWriter, r *http.Request) {
	b, err := h.svc.History(searchContext(r), "", "", stateOf(r).query)
	h.answerBundle(w, r, b, err)
}

// historyType is GET /fhir/{type}/_history.
func (h *handler) historyType(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	b, err := h.svc.History(searchContext(r), typ, "", stateOf(r).query)
	h.answerBundle(w, r, b, err)
}

// historyInstance is GET /fhir/{type}/{id}/_history.
func (h *handler) historyInstance(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	b, err := h.svc.History(searchContext(r), typ, r.PathValue("id"), stateOf(r).query)
	h.answerBundle(w, r, b, err)
}

// bundle is POST /fhir with a batch or transaction Bundle. Per-entry
// statuses and outcomes (including lenient warnings) are in the response
// Bundle's entry.response.
func (h *handler) bundle(w http.ResponseWriter, r *http.Request) {
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := parsePrefer(r)
	ctx, plan := h.auditBundleBefore(r)
	b, err := h.svc.Bundle(ctx, body, h.writeOptions(r, p))
	if err == nil {
		h.noteBundleEntries(r, plan, b)
	}
	h.answerBundle(w, r, b, err)
}

// validate is POST /fhir/{type}/$validate. The answer is an
// OperationOutcome with 200 whether or not the resource is valid: the
// operation succeeded in judging it.
func (h *handler) validate(w http.ResponseWriter, r *http.Request) {
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
	o, err := h.svc.Validate(r.Context(), typ, body, h.writeOptions(r, p))
	h.answerBundle(w, r, o, err)
}

// answerBundle sends a Bundle (or other object) the service built, or the
// error.
func (h *handler) answerBundle(w http.ResponseWriter, r *http.Request, o fhir.Object, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.noteBundle(r, o)
	h.sendObject(w, r, http.StatusOK, o)
}

// capabilities is GET /fhir/metadata, the one FHIR route without a token:
// clients read it to learn what the server supports.
func (h *handler) capabilities(w http.ResponseWriter, r *http.Request) {
	h.sendRaw(w, r, http.StatusOK, h.metadata)
}

// healthz says the process is alive and serving HTTP.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// readyz says whether the node can serve FHIR requests: the store answers.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	if err := h.ready(r.Context()); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.String("error", err.Error()))
		h.fail(w, r, errorf(fhir.EUnavailable, "transient", "the store is not available"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
}
