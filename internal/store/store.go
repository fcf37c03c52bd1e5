// Package store defines the persistence contract that every storage backend
// (store/sqlite, store/postgres) implements, and the index rows that search
// runs on.
//
// A store keeps every version of every resource as encoded JSON plus, for
// the current version only, the search index rows the engine extracted from
// it. It knows nothing of FHIR semantics beyond type, id and version: the
// engine (package engine) decides what to write, validates it and stamps
// meta; the store makes it durable and atomic. Searches are answered from the
// index tables alone, never by reading the documents.
//
// The conformance suite in store/storetest runs unchanged against every
// backend.
package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Version is one stored version of a resource.
type Version struct {
	Type        string
	ID          string
	VersionID   int64     // 1 for the first version, then +1 per write
	LastUpdated time.Time // as stamped in meta.lastUpdated
	Deleted     bool      // a deletion marker: Body is nil
	Body        []byte    // the resource's JSON exactly as written
	Seq         int64     // store-wide write sequence: strictly increasing across all writes
}

// Store is what the engine needs from a backend. Every method is safe for
// concurrent use. Errors are *fhir.Error: ENotFound for a resource that never
// existed, EConflict for a version clash, EUnavailable when the backend is
// down; anything else is EInternal.
type Store interface {
	// Read returns the latest version of a resource, which may be a deletion
	// marker (Deleted true). It returns ENotFound if no version exists.
	Read(ctx context.Context, typ, id string) (*Version, error)
	// VRead returns one version; ENotFound if that version does not exist.
	VRead(ctx context.Context, typ, id string, version int64) (*Version, error)
	// History lists versions newest first (by Seq descending).
	History(ctx context.Context, q HistoryQuery) ([]*Version, error)
	// Search returns current, non-deleted versions matching q.
	Search(ctx context.Context, q *Query) (*Result, error)
	// Write runs fn in one atomic, durable transaction: either everything fn
	// wrote is committed before Write returns nil, or nothing is. A backend
	// may call fn more than once (to retry a serialisation conflict), so fn
	// must not keep state between calls. An error from fn aborts the
	// transaction and is returned unchanged.
	Write(ctx context.Context, fn func(Tx) error) error
	// Secret returns the named node secret, creating it with generate on
	// first use. All processes sharing the store see the same value.
	Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error)
	// KVStore is the key-value space beside the resources (see KV).
	KVStore
	// Ping reports whether the backend can serve requests.
	Ping(ctx context.Context) error
	// Close releases the backend. Writes acknowledged before Close are durable.
	Close() error
}

// Analyzer is implemented by a backend whose query planner works from
// statistics about the data (PostgreSQL). Analyze refreshes them and the
// visibility information index-only scans rely on; the database's own
// background maintenance does the same within minutes of a large change,
// and a bulk load calls it at once so that the first queries after it are
// planned for the data loaded rather than for empty tables.
type Analyzer interface {
	Analyze(ctx context.Context) error
}

// KV is one entry of the store's small key-value space, kept beside the
// resources for node state that is not FHIR: accounts, clients, tokens,
// one-time values, break-glass grants. Entries are not versioned history:
// a write replaces the entry, and an expired entry is as good as absent
// (backends remove expired entries lazily).
type KV struct {
	Bucket  string // a namespace, e.g. "users"; non-empty
	Key     string // unique within the bucket; non-empty
	Value   []byte
	Version int64     // 1 when created, +1 per replacement; see Store.PutKV
	Expires time.Time // the entry vanishes at this instant; zero for never
}

// KVStore is the key-value part of a Store, for the packages that need
// nothing else (accounts, clients, tokens, access grants).
type KVStore interface {
	// KV returns the entry bucket/key; ENotFound when there is none or it
	// has expired.
	KV(ctx context.Context, bucket, key string) (*KV, error)
	// PutKV creates or replaces an entry and sets e.Version to the version
	// stored. With e.Version 0 the write is unconditional; otherwise it is a
	// compare-and-swap: the current (unexpired) entry must have exactly that
	// version, else EConflict and nothing is written (an absent entry is a
	// conflict too).
	PutKV(ctx context.Context, e *KV) error
	// PutKVIfAbsent creates an entry only if no unexpired one exists under
	// its bucket and key, and reports whether it did (e.Version is then 1).
	// It is atomic across every process sharing the store: of two callers
	// racing on one key exactly one gets true (one-time values such as a
	// client assertion's jti).
	PutKVIfAbsent(ctx context.Context, e *KV) (bool, error)
	// DeleteKV removes an entry; removing one that does not exist is not an
	// error.
	DeleteKV(ctx context.Context, bucket, key string) error
	// ListKV returns the unexpired entries of a bucket whose key starts with
	// prefix ("" for all), in key order (bytewise). It is meant for small
	// buckets (users, clients, organisations), not for scanning one-time
	// values.
	ListKV(ctx context.Context, bucket, prefix string) ([]*KV, error)
}

// Tx is a write transaction. Reads through it see the transaction's own
// earlier writes.
type Tx interface {
	// Read is Store.Read inside the transaction. Where the backend needs it,
	// it locks the resource until the transaction ends so that a version
	// read here is still the latest when Put runs.
	Read(ctx context.Context, typ, id string) (*Version, error)
	// Search is Store.Search inside the transaction (for conditional
	// interactions and conditional references).
	Search(ctx context.Context, q *Query) (*Result, error)
	// Put writes a new version. p.VersionID must be exactly one more than the
	// latest stored version (1 when there is none); otherwise EConflict. The
	// index rows of the resource are replaced by p.Index (removed when
	// p.Deleted).
	Put(ctx context.Context, p *Put) error
}

// Put is one version to write.
type Put struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time
	Deleted     bool
	Body        []byte // nil when Deleted
	Index       Index
}

// HistoryQuery selects versions for a history interaction. With Type and ID
// empty it is system history; with only ID empty, type history.
type HistoryQuery struct {
	Type   string
	ID     string
	Since  time.Time // only versions with LastUpdated >= Since; zero for all
	Before int64     // only versions with Seq < Before; 0 for no bound (a page cursor)
	Count  int       // at most this many; 0 means a backend default of 100
}

// Result is a page of search matches.
type Result struct {
	Versions []*Version
	// Total is the number of matches over all pages, or -1 when the query
	// did not ask for it.
	Total int
	// Next is an opaque cursor for the page after this one, "" on the last.
	Next string
	// Prev is an opaque cursor for the page before this one, "" on the
	// first page (a backend that cannot page backwards leaves it "").
	Prev string
	// Included holds the resources selected by Query.Include and
	// Query.RevInclude for this page's matches, each once, none of them a
	// match.
	Included []*Version
	// IncludedTruncated is set when Query.MaxIncluded stopped the includes.
	IncludedTruncated bool
}

// CheckKV rejects an entry no backend may store: an empty bucket or key.
// Backends call it first in PutKV and PutKVIfAbsent.
func CheckKV(e *KV) error {
	if e == nil || e.Bucket == "" || e.Key == "" {
		return fhir.Internal(errors.New("store: a KV entry needs a bucket and a key"))
	}
	return nil
}

// KVMicros is how backends store KV.Expires: Unix microseconds, 0 for never.
func KVMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// KVTime is the inverse of KVMicros.
func KVTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// AuditStore is implemented by a backend that keeps the tamper-evident
// audit log (package audit). The log lives in its own tables, never in the
// resource tables: its entries, the stored hashes of the RFC 6962 Merkle
// tree over them (numbered as golang.org/x/mod/sumdb/tlog numbers them) and
// the signed checkpoints. The store knows nothing of hashing or signing; it
// keeps the rows, appends under a lock every process sharing the store
// respects, and answers searches from indexes.
type AuditStore interface {
	// AppendAudit runs fn in one durable transaction that holds the log's
	// append lock: no other process appends until it ends, so the size fn
	// reads is the size its entries are appended at. Either everything fn
	// appended is committed before AppendAudit returns nil, or nothing is.
	AppendAudit(ctx context.Context, fn func(AuditTx) error) error
	// AuditSize is the number of entries in the log (the next index).
	AuditSize(ctx context.Context) (int64, error)
	// AuditEntries returns at most limit entries with Index >= from, in
	// index order, whatever their numbering (verification reads the log in
	// pages and must see a gap or a row beyond the size).
	AuditEntries(ctx context.Context, from int64, limit int) ([]*AuditEntry, error)
	// AuditHashes returns the stored hashes with the given ids, in order;
	// an id with no hash is an ENotFound error.
	AuditHashes(ctx context.Context, ids []int64) ([][]byte, error)
	// SearchAudit returns the entries q selects, newest (highest index)
	// first, from an index: never a scan of the whole log when q names a
	// patient, a user or an organisation.
	SearchAudit(ctx context.Context, q AuditQuery) ([]*AuditEntry, error)
	// PutAuditCheckpoint stores a signed checkpoint.
	PutAuditCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	// AuditCheckpoints returns the stored checkpoints, smallest tree first
	// (ties in the order stored); with latest, only the last of them.
	AuditCheckpoints(ctx context.Context, latest bool) ([]*AuditCheckpoint, error)
	// AuditSpooled is how far the spool of the node named node has been
	// moved into the log (AuditTx.SetSpooled), 0 before its first move.
	AuditSpooled(ctx context.Context, node string) (int64, error)
}

// AuditTx is the append side of an AppendAudit transaction.
type AuditTx interface {
	// Size is the number of entries in the log now.
	Size(ctx context.Context) (int64, error)
	// Hashes returns stored hashes by id, as AuditStore.AuditHashes, seeing
	// this transaction's own appends.
	Hashes(ctx context.Context, ids []int64) ([][]byte, error)
	// Append adds entries, whose Index must run on from Size without a gap,
	// and the stored hashes that come with them, whose ids run on from
	// firstHash (the number of hashes stored before) without a gap.
	Append(ctx context.Context, entries []*AuditEntry, firstHash int64, hashes [][]byte) error
	// SetSpooled records, in this transaction, that the spool of the node
	// named node has been moved into the log up to pos (a byte position in
	// the spool), so that the entries appended and the position commit or
	// fail together.
	SetSpooled(ctx context.Context, node string, pos int64) error
}

// AuditEntry is one row of the audit log: the columns it is searched by,
// and the AuditEvent JSON.
type AuditEntry struct {
	Index      int64
	Time       int64 // Unix microseconds
	User       string
	Role       string
	Org        string
	Client     string
	Patients   []string
	Action     string
	Outcome    string
	Flags      []string
	Restricted bool
	Event      []byte
	// Indexed is filled by AuditEntries alone: the person-view index rows
	// that point at the entry, sorted by patient, so that verification can
	// check them against the entry (an index row removed or marked
	// restricted would hide an access from the person without touching the
	// entry itself).
	Indexed []AuditIndexRow
}

// AuditIndexRow is one row of the person's view index of the audit log.
type AuditIndexRow struct {
	Patient    string
	Restricted bool
}

// ParseAuditIndexRows reads the "patient:0 patient:1" form backends
// aggregate a person-view index into (1 for restricted).
func ParseAuditIndexRows(s string) []AuditIndexRow {
	var out []AuditIndexRow
	for _, f := range SplitAuditList(s) {
		i := strings.LastIndexByte(f, ':')
		if i < 0 {
			out = append(out, AuditIndexRow{Patient: f})
			continue
		}
		out = append(out, AuditIndexRow{Patient: f[:i], Restricted: f[i+1:] != "0"})
	}
	return out
}

// AuditQuery selects audit entries; every set field must hold (see
// audit.Query).
type AuditQuery struct {
	Patient      string
	User         string
	Org          string
	Since        int64 // Unix microseconds, inclusive; 0 for no bound
	Until        int64 // Unix microseconds, exclusive; 0 for no bound
	Flagged      bool
	Unrestricted bool
	Before       int64 // only Index < Before when > 0
	Limit        int   // > 0
}

// AuditCheckpoint is a signed statement of the log's size and Merkle root.
type AuditCheckpoint struct {
	Size int64
	Root []byte
	Note []byte // the signed note (golang.org/x/mod/sumdb/note) as text
	Time int64  // Unix microseconds, when it was signed
}

// SplitAuditList is the inverse of how backends store AuditEntry.Patients
// and Flags: space-separated (ids and flag codes never hold a space).
func SplitAuditList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
