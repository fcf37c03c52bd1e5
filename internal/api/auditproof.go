package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// The proof endpoints let a party outside the node keep checkpoints of the
// audit log and check later that the log was only appended to, and that a
// given entry is in it (docs/AUDIT.md, "How an outside party verifies the
// log"). They live outside /fhir: they are not FHIR, and checkpoints and
// proofs hold only sizes and hashes, so they are served without a token
// (the checks need the node's verifier key, given out of band). An entry
// itself says who looked at whose record: it is served only to those who
// may see it, and reading it is audited like any /fhir interaction.

// auditProver is what the proof endpoints need of the audit log;
// *audit.Log implements it.
type auditProver interface {
	Checkpoint(ctx context.Context) (*audit.Checkpoint, error)
	Latest(ctx context.Context) (*audit.Checkpoint, error)
	InclusionProof(ctx context.Context, index, treeSize int64) (tlog.RecordProof, error)
	ConsistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
	Entry(ctx context.Context, index int64) (*audit.Entry, error)
}

// prover returns the node's audit log as an auditProver, or answers 404
// when the node keeps none.
func (h *handler) prover(w http.ResponseWriter, r *http.Request) (auditProver, bool) {
	p, ok := h.audit.(auditProver)
	if !ok {
		h.fail(w, r, errorf(fhir.ENotFound, "not-found", "this node keeps no verifiable audit log"))
		return nil, false
	}
	return p, true
}

// auditCheckpoint answers GET /audit/checkpoint: the latest signed
// checkpoint as a note (text/plain), signing one of the current tree first
// if the log has grown since. The request itself is not audited, so asking
// never grows the log: at most one checkpoint is signed per entry appended.
func (h *handler) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	pv, ok := h.prover(w, r)
	if !ok {
		return
	}
	c, err := h.onDemandCheckpoint(r.Context(), pv)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(c.Note)
}

// signOnDemandEvery bounds how often anonymous callers can make the node
// sign and store a checkpoint: every request appends an audit entry (a
// refused one too), so without it two requests could add a checkpoint row,
// without end. Between signings the latest stored one is served; the node
// signs one every minute anyway (audit.CheckpointEvery).
const signOnDemandEvery = time.Second

// onDemandCheckpoint is the checkpoint GET /audit/checkpoint serves: one
// signed now when none was in the last signOnDemandEvery (and the log has
// grown), else the latest stored.
func (h *handler) onDemandCheckpoint(ctx context.Context, pv auditProver) (*audit.Checkpoint, error) {
	now := time.Now().UnixNano()
	last := h.lastSigned.Load()
	if now-last < int64(signOnDemandEvery) || !h.lastSigned.CompareAndSwap(last, now) {
		if c, err := pv.Latest(ctx); err != nil || c != nil {
			return c, err
		}
	}
	return pv.Checkpoint(ctx)
}

// proofJSON is a proof as served: the hashes in order, each standard
// base64 as in the checkpoint's root line.
type proofJSON struct {
	Old    int64    `json:"old,omitempty"`
	New    int64    `json:"new,omitempty"`
	Index  *int64   `json:"index,omitempty"`
	Size   int64    `json:"size,omitempty"`
	Hashes []string `json:"hashes"`
}

func encodeHashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// sizeParam reads the non-negative integer query parameter name, which
// must be given once.
func sizeParam(q url.Values, name string) (int64, error) {
	vs := q[name]
	if len(vs) != 1 {
		return 0, fhir.Invalid(name, "give %s once, as a non-negative integer", name)
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(vs[0], "+") {
		return 0, fhir.Invalid(name, "%s must be a non-negative integer", name)
	}
	return n, nil
}

// locate names the parameter of an EInvalid from the log (a size beyond
// it), which does not know the parameters' names.
func locate(err error, name string) error {
	var fe *fhir.Error
	if fhir.IsKind(err, fhir.EInvalid) && errors.As(err, &fe) && len(fe.Issues) > 0 {
		return fhir.Invalid(name, "%s", fe.Issues[0].Diagnostics)
	}
	return err
}

// auditConsistency answers GET /audit/proof/consistency?old=N&new=M: the
// proof that the tree of the first N entries is a prefix of the tree of
// the first M (tlog.CheckTree against the two checkpoints' roots).
func (h *handler) auditConsistency(w http.ResponseWriter, r *http.Request) {
	pv, ok := h.prover(w, r)
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, fhir.Invalid("", "the query string is malformed"))
		return
	}
	oldSize, err := sizeParam(q, "old")
	if err == nil && oldSize == 0 {
		// The empty tree is a prefix of every tree; tlog proves nothing of it.
		err = fhir.Invalid("old", "old must be at least 1: every log begins with the empty one")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	newSize, err := sizeParam(q, "new")
	if err == nil && newSize < oldSize {
		err = fhir.Invalid("new", "new (%d) must not be smaller than old (%d)", newSize, oldSize)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := pv.ConsistencyProof(r.Context(), oldSize, newSize)
	if err != nil {
		h.fail(w, r, locate(err, "new"))
		return
	}
	h.sendProof(w, proofJSON{Old: oldSize, New: newSize, Hashes: encodeHashes(p)})
}

// auditInclusion answers GET /audit/proof/inclusion?index=I&size=S: the
// proof that entry I is leaf I of the tree of the first S entries
// (tlog.CheckRecord with tlog.RecordHash of the entry's leaf data).
func (h *handler) auditInclusion(w http.ResponseWriter, r *http.Request) {
	pv, ok := h.prover(w, r)
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, fhir.Invalid("", "the query string is malformed"))
		return
	}
	index, err := sizeParam(q, "index")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	size, err := sizeParam(q, "size")
	if err == nil && index >= size {
		err = fhir.Invalid("index", "index (%d) must be smaller than size (%d): leaves are numbered from 0", index, size)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := pv.InclusionProof(r.Context(), index, size)
	if err != nil {
		h.fail(w, r, locate(err, "size"))
		return
	}
	h.sendProof(w, proofJSON{Index: &index, Size: size, Hashes: encodeHashes(p)})
}

func (h *handler) sendProof(w http.ResponseWriter, p proofJSON) {
	if p.Hashes == nil {
		p.Hashes = []string{}
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// auditEntry answers GET /audit/entry/{index}: the entry's leaf data
// (audit.LeafData), exactly the bytes whose tlog.RecordHash is its leaf
// hash. Only callers who may see the entry get it: the privacy officer and
// the operator any entry, a person (or a proxy with full access, naming
// the person in patient) their own unrestricted ones; to anyone else an
// entry they may not see is the 404 of one that does not exist. The
// request is audited like a /fhir interaction, refusals included.
func (h *handler) auditEntry(w http.ResponseWriter, r *http.Request) {
	if h.audit == nil {
		h.fail(w, r, errorf(fhir.ENotFound, "not-found", "this node keeps no verifiable audit log"))
		return
	}
	held := newHeldResponse()
	noteOf(r).setSubtype("audit-entry")
	h.serveAuditEntry(held, r)
	h.auditRelease(w, r, stateOf(r), held)
}

func (h *handler) serveAuditEntry(w http.ResponseWriter, r *http.Request) {
	pv, ok := h.prover(w, r)
	if !ok {
		return
	}
	p, err := h.authenticate(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	stateOf(r).principal = p
	ctx := auth.WithPrincipal(r.Context(), p)
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, fhir.Invalid("", "the query string is malformed"))
		return
	}
	index, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
	if err != nil || index < 0 {
		h.fail(w, r, fhir.Invalid("index", "the entry index must be a non-negative integer"))
		return
	}
	v, err := h.auditViewerOf(ctx, p, strings.TrimPrefix(q.Get("patient"), "Patient/"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	e, err := pv.Entry(ctx, index)
	if err == nil && !v.sees(e) {
		err = fhir.Errorf(fhir.ENotFound, "", "no audit entry %d", index)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	noteOf(r).addResources("AuditEvent/" + strconv.FormatInt(index, 10))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(audit.LeafData(e))
}
