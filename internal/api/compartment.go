package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Compartments is implemented by a Service that answers Patient
// compartment searches and Patient/$everything (the engine does).
type Compartments interface {
	CompartmentSearch(ctx context.Context, ctype, id, typ string, q url.Values) (fhir.Object, error)
	Everything(ctx context.Context, id string, q url.Values) (fhir.Object, error)
}

// instanceSub is GET|POST /fhir/{type}/{id}/{sub}: a compartment search
// (/fhir/Patient/123/Observation, /fhir/Patient/123/*) or
// /fhir/Patient/123/$everything. One route serves both because Go's mux
// would see /fhir/Patient/{id}/{type} and /fhir/{type}/{id}/_history as
// conflicting patterns.
func (h *handler) instanceSub(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	id, sub := r.PathValue("id"), r.PathValue("sub")
	c, ok := h.svc.(Compartments)
	if !ok || typ != "Patient" {
		h.fail(w, r, errorf(fhir.ENotFound, "not-supported", "no such route: /fhir/%s/%s/%s", truncate(typ), truncate(id), truncate(sub)))
		return
	}
	q, ok := h.postedQuery(w, r)
	if !ok {
		return
	}
	var b fhir.Object
	var err error
	switch {
	case sub == "$everything":
		b, err = c.Everything(searchContext(r), id, q)
	case r.Method == http.MethodPost:
		h.fail(w, r, errorf(fhir.EMethodNotAllowed, "not-supported", "a compartment search is a GET"))
		return
	default:
		b, err = c.CompartmentSearch(searchContext(r), "Patient", id, sub, q)
	}
	h.answerBundle(w, r, b, err)
}

// searchSystemPost is POST /fhir/_search: a system search with the
// parameters in a form body.
func (h *handler) searchSystemPost(w http.ResponseWriter, r *http.Request) {
	q, ok := h.postedQuery(w, r)
	if !ok {
		return
	}
	b, err := h.svc.Search(searchContext(r), "", q)
	h.answerBundle(w, r, b, err)
}

// postedQuery returns the URL parameters plus, for a POST, those of a form
// body.
func (h *handler) postedQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q := url.Values{}
	for k, vs := range stateOf(r).query {
		q[k] = append(q[k], vs...)
	}
	if r.Method != http.MethodPost || (r.ContentLength == 0 && r.Header.Get("Content-Type") == "") {
		return q, true
	}
	body, err := h.readAny(w, r, formTypes, true)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		h.fail(w, r, fhir.Invalid("", "the form body is malformed"))
		return nil, false
	}
	for k, vs := range form {
		q[k] = append(q[k], vs...)
	}
	return q, true
}
