package audit

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// specLeaf is LeafData as docs/AUDIT.md states it, written the plain way:
// the version line, then each field as its length, a colon, its bytes and
// a newline. The encoding is what every recorded leaf hash was computed
// from, so it must never change under a version.
func specLeaf(e *Entry) []byte {
	var b strings.Builder
	b.WriteString("sharedcare-audit-entry/1\n")
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)) + ":" + s + "\n")
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

// TestLeafDataEncoding holds LeafData and the mover's appendRowLeaf (onto
// a buffer already holding bytes, as the mover reuses one) to the stated
// encoding, for entries with empty, long, odd and multi-byte fields and
// negative and large numbers.
func TestLeafDataEncoding(t *testing.T) {
	long := strings.Repeat("x", 5000)
	cases := []*Entry{
		{},
		{Index: 0, Time: time.UnixMicro(0), Action: ActionRead, Outcome: OutcomeSuccess, Event: []byte(`{}`)},
		{Index: 1<<62 + 7, Time: time.UnixMicro(-1_234_567), User: "u:1\n2", Role: "clinician", Org: "Z90001",
			Client: "app", Patients: []string{"p1", "p-2", "ünï"}, Action: ActionExecute, Outcome: OutcomeSerious,
			Flags: []string{"break-glass", "self-claimed"}, Restricted: true, Event: []byte(`{"a":"` + long + `"}`)},
		{Index: 9, Time: time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.UTC), User: long, Patients: []string{"only"},
			Flags: []string{}, Event: []byte("{\"b\":\"\\u0000\"}")},
	}
	for i, e := range cases {
		want := specLeaf(e)
		if got := LeafData(e); !bytes.Equal(got, want) {
			t.Errorf("case %d: LeafData\n got %q\nwant %q", i, got, want)
		}
		row, err := toRow(&Entry{Time: e.Time, User: e.User, Role: e.Role, Org: e.Org, Client: e.Client,
			Patients: e.Patients, Action: ActionRead, Outcome: OutcomeSuccess, Flags: e.Flags,
			Restricted: e.Restricted, Event: []byte(`{}`)})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		row.Index = e.Index
		prefix := []byte("earlier leaf bytes")
		got := appendRowLeaf(prefix, row)
		if want := append([]byte("earlier leaf bytes"), specLeaf(fromRow(row))...); !bytes.Equal(got, want) {
			t.Errorf("case %d: appendRowLeaf\n got %q\nwant %q", i, got, want)
		}
	}
}
