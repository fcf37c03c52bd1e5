package audit

import (
	"strconv"
	"strings"
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
	var b strings.Builder
	b.WriteString(leafVersion)
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
		b.WriteByte('\n')
	}
	field(strconv.FormatInt(e.Index, 10))
	field(strconv.FormatInt(e.Time.UnixMicro(), 10))
	field(e.User)
	field(e.Role)
	field(e.Org)
	field(e.Client)
	field(strings.Join(e.Patients, " "))
	field(e.Action)
	field(e.Outcome)
	field(strings.Join(e.Flags, " "))
	if e.Restricted {
		field("1")
	} else {
		field("0")
	}
	field(string(e.Event))
	return []byte(b.String())
}
