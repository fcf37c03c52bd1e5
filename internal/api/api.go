// Package api is sharedcare's FHIR R4 REST API over HTTP: it turns requests
// into calls on a Service (the engine, or later a remote source) and results
// into responses, and owns everything that is HTTP rather than FHIR:
// authentication of the bearer token, content negotiation (_format, Accept,
// _pretty, gzip), request bodies and their limits, conditional headers
// (ETag, If-Match, If-None-Match, If-Modified-Since), Prefer, Location and the
// one mapping from an error kind to a status and an OperationOutcome.
//
// All routes are in routes(); each action lives in its own file (read.go,
// write.go, search.go, system.go). The middleware in middleware.go runs
// around every request: request id, recovery, access log, authentication.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Service is what the HTTP layer needs from the FHIR side: the method set
// of *engine.Engine. It is defined here, where it is consumed, so that a
// remote source (the hub of a later issue, assembling a record from other
// nodes' FHIR APIs) can stand behind the same API.
type Service interface {
	Read(ctx context.Context, typ, id string) (*store.Version, error)
	VRead(ctx context.Context, typ, id, vid string) (*store.Version, error)
	Create(ctx context.Context, typ string, body []byte, o engine.WriteOptions) (*engine.Outcome, error)
	Update(ctx context.Context, typ, id string, body []byte, o engine.WriteOptions) (*engine.Outcome, error)
	ConditionalUpdate(ctx context.Context, typ string, q url.Values, body []byte, o engine.WriteOptions) (*engine.Outcome, error)
	Patch(ctx context.Context, typ, id string, patch []byte, o engine.WriteOptions) (*engine.Outcome, error)
	ConditionalPatch(ctx context.Context, typ string, q url.Values, patch []byte, o engine.WriteOptions) (*engine.Outcome, error)
	Delete(ctx context.Context, typ, id string, o engine.WriteOptions) (*engine.Outcome, error)
	ConditionalDelete(ctx context.Context, typ string, q url.Values, o engine.WriteOptions) (*engine.Outcome, error)
	History(ctx context.Context, typ, id string, q url.Values) (fhir.Object, error)
	Search(ctx context.Context, typ string, q url.Values) (fhir.Object, error)
	Bundle(ctx context.Context, body []byte, o engine.WriteOptions) (fhir.Object, error)
	Validate(ctx context.Context, typ string, body []byte, o engine.WriteOptions) (fhir.Object, error)
	Capabilities() fhir.Object
}

// Pinger is implemented by a Service that can say whether its backing store
// can serve requests; /readyz uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Verifier turns a bearer token into the caller it stands for; *auth.Authority
// implements it. Issue 6 puts SMART clients, users and revocation behind the
// same method.
type Verifier interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// handler holds the dependencies of every action.
type handler struct {
	svc      Service
	ready    func(ctx context.Context) error
	verifier Verifier
	cfg      config.Config
	log      *slog.Logger
	mux      *http.ServeMux
	metadata []byte // the CapabilityStatement, encoded once

	audit audit.Recorder // nil: no audit (Audited, audit.go)
	node  string         // this node, as AuditEvent.source
	facts *factCache     // whose records what an interaction touched is in (Audited)
	// lastSigned is when GET /audit/checkpoint last signed one on demand
	// (Unix ns; auditproof.go).
	lastSigned atomic.Int64
}

// New returns the HTTP handler of a node. cfg supplies the base URL, the
// body and depth limits and the server-wide lenient default. When svc also
// implements Pinger, /readyz reports its state; otherwise /readyz is /healthz.
func New(svc Service, verifier Verifier, cfg config.Config, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: svc, verifier: verifier, cfg: cfg, log: log, mux: http.NewServeMux()}
	h.ready = func(context.Context) error { return nil }
	if p, ok := svc.(Pinger); ok {
		h.ready = p.Ping
	}
	h.metadata = fhir.Marshal(svc.Capabilities())
	h.routes()
	return h
}

// routes registers every route of the node. Go's method patterns give a 405
// with Allow for a known path and the wrong method; ServeHTTP turns that and
// the 404 into OperationOutcomes.
func (h *handler) routes() {
	m := h.mux
	m.HandleFunc("GET /healthz", h.healthz)
	m.HandleFunc("GET /readyz", h.readyz)

	m.HandleFunc("GET /fhir/metadata", h.capabilities)

	// System level.
	m.HandleFunc("GET /fhir", h.searchSystem)
	m.HandleFunc("GET /fhir/{$}", h.searchSystem)
	m.HandleFunc("POST /fhir", h.bundle)
	m.HandleFunc("POST /fhir/{$}", h.bundle)
	m.HandleFunc("GET /fhir/_history", h.historySystem)
	m.HandleFunc("POST /fhir/_search", h.searchSystemPost)

	// Type level.
	m.HandleFunc("GET /fhir/{type}", h.searchType)
	m.HandleFunc("POST /fhir/{type}", h.create)
	m.HandleFunc("POST /fhir/{type}/_search", h.searchTypePost)
	m.HandleFunc("PUT /fhir/{type}", h.conditionalUpdate)
	m.HandleFunc("PATCH /fhir/{type}", h.conditionalPatch)
	m.HandleFunc("DELETE /fhir/{type}", h.conditionalDelete)
	m.HandleFunc("GET /fhir/{type}/_history", h.historyType)
	m.HandleFunc("POST /fhir/{type}/$validate", h.validate)
	// Master patient index (mpi.go).
	m.HandleFunc("POST /fhir/Patient/$match", h.match)
	m.HandleFunc("POST /fhir/Patient/$merge", h.merge)
	m.HandleFunc("POST /fhir/Patient/$unmerge", h.unmerge)
	m.HandleFunc("POST /fhir/Task/{id}/$accept", h.acceptReview)
	m.HandleFunc("POST /fhir/Task/{id}/$reject", h.rejectReview)

	// Instance level.
	m.HandleFunc("GET /fhir/{type}/{id}", h.read)
	m.HandleFunc("PUT /fhir/{type}/{id}", h.update)
	m.HandleFunc("PATCH /fhir/{type}/{id}", h.patch)
	m.HandleFunc("DELETE /fhir/{type}/{id}", h.delete)
	m.HandleFunc("GET /fhir/{type}/{id}/_history", h.historyInstance)
	m.HandleFunc("GET /fhir/{type}/{id}/_history/{vid}", h.vread)
	// Patient compartment search and Patient/$everything (compartment.go).
	m.HandleFunc("GET /fhir/{type}/{id}/{sub}", h.instanceSub)
	m.HandleFunc("POST /fhir/{type}/{id}/{sub}", h.instanceSub)

	h.smartRoutes() // SMART discovery and the /auth endpoints (smart.go)

	// The audit log's checkpoints, proofs and entries, for parties outside
	// the node (auditproof.go).
	m.HandleFunc("GET /audit/checkpoint", h.auditCheckpoint)
	m.HandleFunc("GET /audit/proof/consistency", h.auditConsistency)
	m.HandleFunc("GET /audit/proof/inclusion", h.auditInclusion)
	m.HandleFunc("GET /audit/entry/{index}", h.auditEntry)
}
