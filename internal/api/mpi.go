package api

import (
	"context"
	"net/http"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// MPI is implemented by a Service that carries the master patient index
// (internal/mpi/service): Patient/$match, $merge and $unmerge, and the
// decisions of the review queue. The queue itself is listed with an ordinary
// search: Task?code=https://fhir.sharedcare.dev/CodeSystem/mpi|review-link&status=requested.
type MPI interface {
	Match(ctx context.Context, body []byte) (fhir.Object, error)
	Merge(ctx context.Context, body []byte) (fhir.Object, error)
	Unmerge(ctx context.Context, body []byte) (fhir.Object, error)
	Accept(ctx context.Context, taskID string) (fhir.Object, error)
	Reject(ctx context.Context, taskID string) (fhir.Object, error)
}

// mpiOr answers 404 when the service has no patient index.
func (h *handler) mpiOr(w http.ResponseWriter, r *http.Request) (MPI, bool) {
	m, ok := h.svc.(MPI)
	if !ok {
		h.fail(w, r, errorf(fhir.ENotFound, "not-supported", "this node runs no master patient index"))
	}
	return m, ok
}

// governance admits the callers allowed to change link decisions: review,
// merge and unmerge are for the information-governance role. Issue 6 brings
// roles; the role check goes here (Principal.Role == the IG role, with its
// organisation). Until then only the full-access token may.
func (h *handler) governance(w http.ResponseWriter, r *http.Request) bool {
	p, ok := auth.FromContext(r.Context())
	if !ok || !p.HasScope(auth.FullAccessScope) {
		h.fail(w, r, errorf(fhir.EForbidden, "forbidden", "link decisions (review, merge, unmerge) need the information-governance role"))
		return false
	}
	return true
}

// match is POST /fhir/Patient/$match.
func (h *handler) match(w http.ResponseWriter, r *http.Request) {
	m, ok := h.mpiOr(w, r)
	if !ok {
		return
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := m.Match(r.Context(), body)
	h.answerBundle(w, r, b, err)
}

// merge is POST /fhir/Patient/$merge.
func (h *handler) merge(w http.ResponseWriter, r *http.Request) {
	h.mergeOp(w, r, MPI.Merge)
}

// unmerge is POST /fhir/Patient/$unmerge.
func (h *handler) unmerge(w http.ResponseWriter, r *http.Request) {
	h.mergeOp(w, r, MPI.Unmerge)
}

func (h *handler) mergeOp(w http.ResponseWriter, r *http.Request, op func(MPI, context.Context, []byte) (fhir.Object, error)) {
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// A merge or unmerge concerns the records its Parameters name, whether
	// or not it is allowed to go ahead.
	noteOf(r).addPatients(patientRefs(body, nil)...)
	m, ok := h.mpiOr(w, r)
	if !ok || !h.governance(w, r) {
		return
	}
	out, err := op(m, r.Context(), body)
	h.answerBundle(w, r, out, err)
}

// acceptReview is POST /fhir/Task/{id}/$accept: the two Patients of a
// review Task are one person.
func (h *handler) acceptReview(w http.ResponseWriter, r *http.Request) {
	h.reviewOp(w, r, MPI.Accept)
}

// rejectReview is POST /fhir/Task/{id}/$reject: they are different people.
func (h *handler) rejectReview(w http.ResponseWriter, r *http.Request) {
	h.reviewOp(w, r, MPI.Reject)
}

func (h *handler) reviewOp(w http.ResponseWriter, r *http.Request, op func(MPI, context.Context, string) (fhir.Object, error)) {
	m, ok := h.mpiOr(w, r)
	if !ok || !h.governance(w, r) {
		return
	}
	// A review decision concerns the two records its Task names.
	if t, err := h.rawRead(r.Context(), "Task", r.PathValue("id")); err == nil {
		noteOf(r).addPatients(patientRefs(t.Body, nil)...)
	}
	out, err := op(m, r.Context(), r.PathValue("id"))
	h.answerBundle(w, r, out, err)
}
