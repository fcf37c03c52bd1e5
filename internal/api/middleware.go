package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// state is what the middleware learns about a request and the actions use:
// its id, the verified caller, the parsed query and the negotiated format.
type state struct {
	id        string
	principal *auth.Principal
	query     url.Values
	format    format
	note      auditNote // what the audit entry will say (auditnote.go)
}

type stateKey struct{}

// stateOf returns the request's state (an empty one outside ServeHTTP).
func stateOf(r *http.Request) *state {
	if st, ok := r.Context().Value(stateKey{}).(*state); ok {
		return st
	}
	return &state{format: format{contentType: contentTypeFHIR}}
}

// recorder remembers the status and size of a response for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// requestID returns the caller's X-Request-Id when it is short and made of
// safe characters (it goes into logs), else a new one: a random per-process
// prefix and a counter, unique without a random read per request.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 {
		ok := true
		for i := 0; i < len(id) && ok; i++ {
			c := id[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return id
		}
	}
	return idPrefix + "-" + strconv.FormatUint(idCounter.Add(1), 10)
}

// ServeHTTP runs the middleware chain around the routes: request id, panic
// recovery, access log, authentication, format negotiation, then the route,
// with unmatched paths and methods answered as OperationOutcomes.
func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &state{id: requestID(r), format: format{contentType: contentTypeFHIR}}
	w := &recorder{ResponseWriter: rw}
	if h.audit != nil && (strings.HasPrefix(r.URL.Path, "/fhir/") || r.URL.Path == "/fhir" || isAuditedAuth(r)) {
		// Fail closed (audit.go): the response is held until its entry is durable.
		held := newHeldResponse()
		w.ResponseWriter = held
		defer h.auditRelease(rw, r, st, held)
	}
	w.Header().Set("X-Request-Id", st.id)
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))

	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			h.log.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("request_id", st.id), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.String("panic", fmt.Sprint(rec)),
				slog.String("stack", string(debug.Stack())))
			if w.status == 0 {
				h.fail(w, r, fhir.Internal(fmt.Errorf("panic: %v", rec)))
			}
		}
		h.accessLog(r, w, st, start)
	}()

	if strings.HasPrefix(r.URL.Path, "/fhir/") || r.URL.Path == "/fhir" {
		// Authentication comes first: a caller without a valid token learns
		// nothing else, not even whether its query or format was acceptable.
		if !isPublic(r) {
			p, err := h.authenticate(r)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			st.principal = p
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
			if h.audit != nil && isAuditSearch(r) {
				h.auditSearch(w, r, p)
				return
			}
			// Authorisation next (access.go): every request is decided and
			// the decision travels as the engine's access filter.
			var ok bool
			if r, ok = h.authorize(w, r, p); !ok {
				return
			}
		}
		if r.URL.RawQuery != "" {
			q, err := url.ParseQuery(r.URL.RawQuery)
			if err != nil {
				h.fail(w, r, fhir.Invalid("", "the query string is malformed"))
				return
			}
			st.query = q
		}
		f, err := negotiate(r, st.query)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		st.format = f
	}

	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unmatched(w, r)
		return
	}
	if h.audit != nil && isAuditEventWrite(r) {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, errorf(fhir.EMethodNotAllowed, "not-supported", "AuditEvent is read-only: the audit log is written by the node alone"))
		return
	}
	if dec := h.decider(); dec != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The next decision sees what this request wrote (a consent, a
		// relationship): access.Decider.Changed.
		defer dec.Changed()
	}
	h.mux.ServeHTTP(w, r)
}

// isPublic reports whether a /fhir request may go without a token: only the
// CapabilityStatement and the SMART discovery document (SMART App Launch v2
// places it under the FHIR base), which clients need to discover how to
// authenticate.
func isPublic(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == "/fhir/metadata" || r.URL.Path == "/fhir/.well-known/smart-configuration")
}

// authenticate verifies the bearer token of r.
func (h *handler) authenticate(r *http.Request) (*auth.Principal, error) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return nil, errorf(fhir.EUnauthorized, "login", "authentication required: send Authorization: Bearer <token>")
	}
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errorf(fhir.EUnauthorized, "login", "only Bearer tokens are accepted")
	}
	return h.verifier.Verify(r.Context(), strings.TrimSpace(token))
}

// unmatched answers a request no route matched: 405 with Allow when the path
// is known but the method is not, else 404; both as OperationOutcomes (the
// mux's own answers are plain text).
func (h *handler) unmatched(w http.ResponseWriter, r *http.Request) {
	mh, _ := h.mux.Handler(r)
	probe := &headerProbe{header: http.Header{}}
	mh.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		h.fail(w, r, errorf(fhir.EMethodNotAllowed, "not-supported", "method %s is not allowed here; allowed: %s", r.Method, probe.header.Get("Allow")))
	case http.StatusNotFound, 0:
		h.fail(w, r, errorf(fhir.ENotFound, "not-found", "no such path: %s", truncate(r.URL.Path)))
	default:
		// A redirect to the cleaned path: let the mux answer.
		mh.ServeHTTP(w, r)
	}
}

// headerProbe captures the status and headers the mux's fallback handler
// would send, so that they can be re-sent with an OperationOutcome.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

// accessLog writes one line per request. It never logs the query string
// (it may carry identifiers such as NHS numbers) nor any header that holds
// a credential.
func (h *handler) accessLog(r *http.Request, w *recorder, st *state, start time.Time) {
	if !h.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("request_id", st.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", time.Since(start)),
		slog.String("principal", st.principal.String()),
	)
}

// truncate shortens user input quoted back in messages.
func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
