package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/audit"
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

// release records e and, only once it is durable, sends the held response
// to w. When Record fails the client gets a 503 with an OperationOutcome
// and none of the held headers or body.
func (h *heldResponse) release(ctx context.Context, rec audit.Recorder, e *audit.Entry, w http.ResponseWriter) error {
	if err := rec.Record(ctx, e); err != nil {
		auditUnavailable(w)
		return err
	}
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
	}
	return hd
}

// auditPatients are the Patient ids a request names in its path or in its
// patient/subject parameters. TODO(issue 7): take them from the access
// layer's narrowing (internal/api/access.go) instead.
func auditPatients(r *http.Request, q url.Values) []string {
	var ids []string
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/fhir"), "/"), "/")
	if len(segs) >= 2 && segs[0] == "Patient" && segs[1] != "" && !strings.HasPrefix(segs[1], "$") {
		ids = append(ids, segs[1])
	}
	for _, k := range []string{"patient", "subject"} {
		for _, v := range q[k] {
			v = strings.TrimPrefix(v, "Patient/")
			if v != "" && !strings.Contains(v, "/") {
				ids = append(ids, v)
			}
		}
	}
	return ids
}

// auditAction is the AuditEvent action of a request's method.
func auditAction(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return audit.ActionRead
	case http.MethodPut, http.MethodPatch:
		return audit.ActionUpdate
	case http.MethodDelete:
		return audit.ActionDelete
	case http.MethodPost:
		return audit.ActionExecute
	}
	return audit.ActionExecute
}

// auditRelease records the interaction held in held and sends it to rw.
func (h *handler) auditRelease(rw http.ResponseWriter, r *http.Request, st *state, held *heldResponse) {
	q, _ := url.ParseQuery(r.URL.RawQuery)
	f := auditFacts{
		Subtype: r.Method, Action: auditAction(r.Method), Status: held.Status(), Time: time.Now(),
		Node: h.node, Patients: auditPatients(r, q), Query: auditQuery(r.URL.Path, q),
	}
	if r.Method == http.MethodPost && held.Status() == http.StatusCreated {
		f.Action = audit.ActionCreate
	}
	if loc := held.Header().Get("Location"); loc != "" {
		// A create or update concerns what it wrote.
		if i := strings.Index(loc, "/fhir/"); i >= 0 {
			segs := strings.Split(loc[i+len("/fhir/"):], "/")
			if len(segs) >= 2 {
				f.Resources = append(f.Resources, segs[0]+"/"+segs[1])
				if segs[0] == "Patient" {
					f.Patients = append(f.Patients, segs[1])
				}
			}
		}
	}
	if p := st.principal; p != nil {
		f.User, f.Role, f.Org, f.Client = p.Subject, p.Role, p.Organisation, p.Client
	}
	e, err := f.entry()
	if err != nil {
		auditUnavailable(rw)
		return
	}
	if err := held.release(r.Context(), h.audit, e, rw); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "audit record failed: request refused",
			slog.String("request_id", st.id), slog.String("error", err.Error()))
	}
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
