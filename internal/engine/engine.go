// Package engine implements the FHIR R4 RESTful interactions (read, vread,
// create, update, patch, delete, their conditional forms, history, search,
// batch and transaction bundles, $validate and the CapabilityStatement) over a
// store.Store, independent of HTTP.
//
// It sits between the HTTP API (package api), which turns requests into calls
// here and results into responses, and the storage backends, which only make
// versions durable. Everything FHIR decides about a write happens here: the
// body is parsed once, validated once (package validate), stamped with its
// version, encoded once and indexed; stored bodies are handed back to callers
// as json.RawMessage without being parsed again.
//
// Every error returned is a *fhir.Error whose kind the HTTP layer maps to a
// status.
//
// Where the specification leaves room, the engine decides:
//   - An update whose content equals the current version writes nothing and
//     returns the current version (Outcome.NoOp), so feeds that re-send the
//     same Organization do not grow its history.
//   - If-Match on a resource that does not exist or is deleted is 412 (RFC
//     9110: there is no current representation to match).
//   - vread of a version id that is a valid id but not one of the integers
//     the server assigns is 404; a malformed one is 400.
//   - Deleting what does not exist, or is already deleted, succeeds without
//     writing. Conditional delete is single-match (412 on several).
//   - Conditional creates write under an id derived from their criteria
//     (condid.go), so concurrent identical conditional creates cannot both
//     create, on PostgreSQL as on SQLite.
//   - Search and history parameters the engine does not know are ignored
//     (and reported, for search) unless the request asks for strict
//     handling (WithHandling); parameters it knows but does not implement
//     are always an error (501), and conditional criteria must be fully
//     understood, so no result is ever wider than asked.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/search"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Config holds the engine's settings.
type Config struct {
	BaseURL          string           // absolute base of the FHIR API, e.g. "http://127.0.0.1:8080/fhir"
	Lenient          bool             // server-wide default for handling=lenient
	MaxBundleEntries int              // 0 = default 10000
	Now              func() time.Time // nil = time.Now
	AfterWrite       AfterWrite       // nil = none; called after every committed write (hooks.go)
	// Source, when set, is the meta.source stamped on every resource written
	// without one: the organisation whose data a bulk load is
	// (https://sharedcare.example/ods/<ODS>, see internal/access), which is
	// what the access model shares by. Writes through the API under access
	// control are stamped with the writer's organisation before they get
	// here.
	Source string
	// Operations lists, by resource type, the operations that a layer
	// around the engine serves (the master patient index's $match, $merge,
	// $unmerge, $accept, $reject), so that the CapabilityStatement lists
	// what the node answers and nothing more.
	Operations map[string][]Operation
}

// Operation names an operation in the CapabilityStatement.
type Operation struct {
	Name       string // without the "$"
	Definition string // canonical URL of its OperationDefinition
}

// DefaultMaxBundleEntries bounds a batch or transaction when Config leaves it 0.
const DefaultMaxBundleEntries = 10000

// Engine performs FHIR interactions against one store. It is safe for
// concurrent use.
type Engine struct {
	st  store.Store
	cfg Config
	cap fhir.Object
	ck  condKey
	ix  *search.Indexer // extracts index rows; knows the base URL so absolute references to this server index as Type/id
}

// New returns an engine over st.
func New(st store.Store, cfg Config) *Engine {
	if cfg.MaxBundleEntries <= 0 {
		cfg.MaxBundleEntries = DefaultMaxBundleEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterWrite != nil {
		st = &hookedStore{Store: st, after: cfg.AfterWrite}
	}
	for len(cfg.BaseURL) > 0 && cfg.BaseURL[len(cfg.BaseURL)-1] == '/' {
		cfg.BaseURL = cfg.BaseURL[:len(cfg.BaseURL)-1]
	}
	e := &Engine{st: st, cfg: cfg, ix: &search.Indexer{Base: cfg.BaseURL}}
	e.cap = e.capabilities()
	return e
}

// WriteOptions are the request-level switches of a write.
type WriteOptions struct {
	Lenient     bool   // Prefer: handling=lenient (api ORs in the server default)
	IfMatch     string // raw If-Match header (W/"3"); "" = none
	IfNoneExist string // raw If-None-Exist query (conditional create), without "?"
}

// Outcome is the result of a write.
type Outcome struct {
	Version  *store.Version // the version written (or, for a conditional create that matched, the existing one)
	Created  bool           // 201 rather than 200
	NoOp     bool           // conditional create matched an existing resource / delete of nothing / update with unchanged content
	Warnings []fhir.Issue
}

type handlingKey struct{}

// WithHandling returns a context carrying the request's search handling
// (Prefer: handling=strict|lenient). Strict makes Search and History reject
// parameters they do not know with 400; without it they ignore them and, for
// Search, say so in an OperationOutcome entry of the result.
func WithHandling(ctx context.Context, strict bool) context.Context {
	return context.WithValue(ctx, handlingKey{}, strict)
}

func strictHandling(ctx context.Context) bool {
	s, _ := ctx.Value(handlingKey{}).(bool)
	return s
}

// BundleRequest is one entry's request of a batch or transaction as sent.
type BundleRequest struct {
	Method string
	URL    string
}

type bundleSeenKey struct{}

// WithBundleSeen returns a context under which Bundle calls seen once it
// has parsed a batch or transaction, before any entry runs, with its type
// and each entry's request as sent ("" where an entry has none): what the
// audit of the bundle needs to know of it, without parsing it again.
func WithBundleSeen(ctx context.Context, seen func(kind string, reqs []BundleRequest)) context.Context {
	return context.WithValue(ctx, bundleSeenKey{}, seen)
}

// newID returns a random UUID version 4 as a FHIR id: 36 characters, well
// within the 64 an id may have, and unguessable, so ids leak nothing about
// how many resources exist.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// now returns the write time, truncated to the millisecond precision that
// meta.lastUpdated carries, so the stored Version and the body agree.
func (e *Engine) now() time.Time {
	return e.cfg.Now().UTC().Truncate(time.Millisecond)
}

// checkType rejects a resource type this server does not know (404, as for
// an unknown URL).
func checkType(typ string) error {
	if !r4.IsResource(typ) {
		return fhir.Errorf(fhir.ENotFound, "", "unknown resource type %q", typ)
	}
	return nil
}

// checkID rejects a malformed logical id.
func checkID(id string) error {
	if !fhir.ValidID(id) {
		return fhir.Invalid("", "invalid resource id %q: an id is 1 to 64 of A-Z a-z 0-9 - .", trunc(id))
	}
	return nil
}

// trunc shortens user input quoted back in messages.
func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
