package audit

import (
	"slices"
	"strconv"

	"github.com/sharedcare/sharedcare/internal/store"
)

// leafVersion opens every leaf: a change of encoding is a new version, so a
// verifier never reads one encoding as another.
const leafVersion = "sharedcare-audit-entry/1\n"

// LeafData is the record an entry contributes to the Merkle tree: every
// field of the entry, the search columns included (so that moving an entry
// into or out of a person's view is tampering too), each as its length in
// bytes, a colon, the bytes and a newline. Lengths make the encoding
// unambiguous whatever the fields hold. An outside party holding an entry
// recomputes its leaf hash as tlog.RecordHash(LeafData(e)).
func LeafData(e *Entry) []byte {
	return appendLeaf(nil, e.Index, e.Time.UnixMicro(), e.User, e.Role, e.Org, e.Client,
		e.Patients, e.Action, e.Outcome, e.Flags, e.Restricted, e.Event)
}

// appendRowLeaf appends the LeafData of the entry stored as r to dst. The
// mover computes every entry's leaf from its row with one buffer, rather
// than an Entry and a leaf allocated for each.
func appendRowLeaf(dst []byte, r *store.AuditEntry) []byte {
	return appendLeaf(dst, r.Index, r.Time, r.User, r.Role, r.Org, r.Client,
		r.Patients, r.Action, r.Outcome, r.Flags, r.Restricted, r.Event)
}

// appendLeaf appends the leaf of an entry's fields to dst, growing it at
// most once.
func appendLeaf(dst []byte, index, micros int64, user, role, org, client string, patients []string,
	action, outcome string, flags []string, restricted bool, event []byte) []byte {
	// The event is hashed unpacked (packed.go): the leaf is of the
	// AuditEvent itself.
	eventLen := unpackedLen(event)
	// Each field's bytes, and up to 20 digits, a colon and a newline around
	// each of the twelve.
	dst = slices.Grow(dst, len(leafVersion)+12*22+2*20+len(user)+len(role)+len(org)+len(client)+
		joinedLen(patients)+len(action)+len(outcome)+joinedLen(flags)+1+eventLen)
	dst = append(dst, leafVersion...)
	field := func(s string) {
		dst = strconv.AppendInt(dst, int64(len(s)), 10)
		dst = append(dst, ':')
		dst = append(dst, s...)
		dst = append(dst, '\n')
	}
	// A number's field: its decimal digits, written aside first, since
	// their count goes before them.
	number := func(n int64) {
		var digits [20]byte
		d := strconv.AppendInt(digits[:0], n, 10)
		dst = strconv.AppendInt(dst, int64(len(d)), 10)
		dst = append(dst, ':')
		dst = append(dst, d...)
		dst = append(dst, '\n')
	}
	// A list's field: its items joined by single spaces.
	list := func(items []string) {
		dst = strconv.AppendInt(dst, int64(joinedLen(items)), 10)
		dst = append(dst, ':')
		dst = appendJoined(dst, items)
		dst = append(dst, '\n')
	}
	number(index)
	number(micros)
	field(user)
	field(role)
	field(org)
	field(client)
	list(patients)
	field(action)
	field(outcome)
	list(flags)
	if restricted {
		field("1")
	} else {
		field("0")
	}
	dst = strconv.AppendInt(dst, int64(eventLen), 10)
	dst = append(dst, ':')
	dst = appendUnpacked(dst, event)
	return append(dst, '\n')
}

// joinedLen is the length of items joined by single spaces, as an entry's
// patients and flags are in its leaf, its spool record and its row.
func joinedLen(items []string) int {
	n := max(len(items)-1, 0)
	for _, s := range items {
		n += len(s)
	}
	return n
}

// appendJoined appends items joined by single spaces (joinedLen bytes).
func appendJoined(dst []byte, items []string) []byte {
	for i, s := range items {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, s...)
	}
	return dst
}
