package audit_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/audit"
)

func testKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func sign(t testing.TB, s note.Signer, text string) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestParseCheckpoint: a checkpoint opens only with its signer's key and
// only in the exact checkpoint form.
func TestParseCheckpoint(t *testing.T) {
	s, v := testKey(t, "sharedcare-audit-test")
	other, _ := testKey(t, "sharedcare-audit-other")
	root := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	good := sign(t, s, "sharedcare-audit-test\n12\n"+root+"\n")
	c, err := audit.ParseCheckpoint(good, note.VerifierList(v))
	if err != nil || c.Size != 12 || c.Origin != "sharedcare-audit-test" || c.Root[0] != 7 {
		t.Fatalf("a good checkpoint: %+v, %v", c, err)
	}
	bad := map[string][]byte{
		"signed by another key":      sign(t, other, "sharedcare-audit-test\n12\n"+root+"\n"),
		"origin is not the signer":   sign(t, s, "sharedcare-audit-other\n12\n"+root+"\n"),
		"size not a number":          sign(t, s, "sharedcare-audit-test\ntwelve\n"+root+"\n"),
		"size with a leading zero":   sign(t, s, "sharedcare-audit-test\n012\n"+root+"\n"),
		"negative size":              sign(t, s, "sharedcare-audit-test\n-1\n"+root+"\n"),
		"root not 32 bytes":          sign(t, s, "sharedcare-audit-test\n12\nAAAA\n"),
		"an extra line":              sign(t, s, "sharedcare-audit-test\n12\n"+root+"\nmore\n"),
		"text changed after signing": bytes.Replace(good, []byte("\n12\n"), []byte("\n13\n"), 1),
		"not a note":                 []byte("hello"),
		"empty":                      nil,
	}
	for name, msg := range bad {
		if _, err := audit.ParseCheckpoint(msg, note.VerifierList(v)); err == nil {
			t.Errorf("%s: opened, want an error", name)
		}
	}
}

// FuzzParseCheckpoint: a checkpoint file comes from outside (an outside
// party's copy); no input may panic, and what opens is a well-formed
// checkpoint signed by the key.
func FuzzParseCheckpoint(f *testing.F) {
	s, v := testKey(f, "sharedcare-audit-fuzz")
	root := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	f.Add(sign(f, s, "sharedcare-audit-fuzz\n3\n"+root+"\n"))
	f.Add([]byte("sharedcare-audit-fuzz\n3\n" + root + "\n\n— sharedcare-audit-fuzz AAAA\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := audit.ParseCheckpoint(msg, note.VerifierList(v))
		if err != nil {
			return
		}
		if c.Origin != "sharedcare-audit-fuzz" || c.Size < 0 {
			t.Fatalf("opened %+v", c)
		}
		if !strings.HasPrefix(string(msg), fmt.Sprintf("%s\n%d\n", c.Origin, c.Size)) {
			t.Fatalf("opened a checkpoint whose text is not origin, size: %q", msg)
		}
	})
}

// TestLeafDataIsUnambiguous: entries that differ in any field, however the
// fields' contents are arranged, have different leaves.
func TestLeafDataIsUnambiguous(t *testing.T) {
	base := audit.Entry{Index: 3, Time: time.UnixMicro(1_700_000_000_000_001), User: "u", Role: "r", Org: "o", Client: "c",
		Patients: []string{"p1", "p2"}, Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Flags: []string{audit.FlagBreakGlass},
		Event: []byte(`{"resourceType":"AuditEvent"}`)}
	variants := map[string]func(e *audit.Entry){
		"index":                         func(e *audit.Entry) { e.Index = 4 },
		"time by a microsecond":         func(e *audit.Entry) { e.Time = e.Time.Add(time.Microsecond) },
		"user":                          func(e *audit.Entry) { e.User = "v" },
		"user and role run together":    func(e *audit.Entry) { e.User, e.Role = "ur", "" },
		"a field holding the separator": func(e *audit.Entry) { e.User, e.Role = "u\n1:r", "" },
		"org":                           func(e *audit.Entry) { e.Org = "o2" },
		"client":                        func(e *audit.Entry) { e.Client = "" },
		"one patient fewer":             func(e *audit.Entry) { e.Patients = e.Patients[:1] },
		"patients reordered":            func(e *audit.Entry) { e.Patients = []string{"p2", "p1"} },
		"action":                        func(e *audit.Entry) { e.Action = audit.ActionUpdate },
		"outcome":                       func(e *audit.Entry) { e.Outcome = audit.OutcomeMinor },
		"no flags":                      func(e *audit.Entry) { e.Flags = nil },
		"restricted":                    func(e *audit.Entry) { e.Restricted = true },
		"event whitespace":              func(e *audit.Entry) { e.Event = []byte(`{"resourceType": "AuditEvent"}`) },
	}
	leaf := string(audit.LeafData(&base))
	for name, change := range variants {
		e := base
		change(&e)
		if string(audit.LeafData(&e)) == leaf {
			t.Errorf("%s: same leaf as the original", name)
		}
	}
}
