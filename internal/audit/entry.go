// Package audit is sharedcare's tamper-evident record of every access
// (issue 7). Each interaction with the node becomes one Entry: a FHIR
// AuditEvent plus the few columns it is searched by. Entries are the leaves
// of an RFC 6962 Merkle tree whose hashes are stored beside them in the
// same store, and the node signs a checkpoint of the tree at least every
// minute and on shutdown, so that anyone holding an earlier checkpoint can
// check that the log was only ever appended to (docs/AUDIT.md).
//
// The API records through Recorder and reads through Reader; Log
// implements both over a store.
package audit

import (
	"context"
	"time"
)

// Actions, as AuditEvent.action codes.
const (
	ActionCreate  = "C"
	ActionRead    = "R"
	ActionUpdate  = "U"
	ActionDelete  = "D"
	ActionExecute = "E" // search, history, operations, login
)

// Outcomes, as AuditEvent.outcome codes.
const (
	OutcomeSuccess = "0"
	OutcomeMinor   = "4" // refused: the caller's request was denied or bad
	OutcomeSerious = "8" // the server failed
)

// Flags mark entries a privacy officer reviews and the person sees
// highlighted.
const (
	FlagBreakGlass        = "break-glass"
	FlagSelfClaimed       = "self-claimed"
	FlagObjectionOverride = "objection-override"
	FlagLabelled          = "labelled" // sensitive (meta.security) data was disclosed
)

// Entry is one audit record.
type Entry struct {
	// Index is the entry's position in the log (its Merkle leaf number),
	// assigned when it is recorded; 0-based.
	Index int64
	Time  time.Time
	// Who.
	User   string // the user's subject, "" for a system client alone
	Role   string
	Org    string // ODS code
	Client string // the SMART client id
	// Patients are the ids of the Patient records the interaction concerned
	// (the person's compartment): whose "who looked at my record" it is in.
	Patients []string
	Action   string // one of the Action constants
	Outcome  string // one of the Outcome constants
	// Flags are the reviewable circumstances (the Flag constants).
	Flags []string
	// Restricted marks an entry whose disclosure is itself restricted (a
	// safeguarding access): it is withheld from the person's own view.
	Restricted bool
	// Event is the AuditEvent resource as JSON, exactly as hashed into the
	// log. It never carries a token, password or secret. Given to Record it
	// may be packed (packed.go); read from the log it never is.
	Event []byte
}

// Recorder records entries durably.
type Recorder interface {
	// Record appends e, sets e.Index, and returns only once the entry is
	// durable (group-committed with concurrent entries). An error means the
	// entry may not be durable: the caller must then not disclose the data
	// it was about to return (fail closed).
	Record(ctx context.Context, e *Entry) error
	// RecordAll is Record for the several entries of one interaction (a
	// Bundle's, with its own): all durable in one write at consecutive
	// indexes, or none.
	RecordAll(ctx context.Context, es []*Entry) error
}

// Query selects entries; every set field must hold.
type Query struct {
	Patient string // entries concerning this Patient id
	User    string
	Org     string
	Since   time.Time // inclusive; zero for no bound
	Until   time.Time // exclusive; zero for no bound
	Flagged bool      // only entries with at least one flag
	// Unrestricted leaves out Restricted entries (the person's own view).
	Unrestricted bool
	// Before, when > 0, returns only entries with Index < Before (paging
	// backwards in time).
	Before int64
	Limit  int // at most this many, newest first; 0 for a default of 100
}

// Reader searches recorded entries, newest first.
type Reader interface {
	Search(ctx context.Context, q Query) ([]*Entry, error)
}
