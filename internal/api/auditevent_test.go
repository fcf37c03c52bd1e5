package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sharedcare/sharedcare/internal/audit"
)

// decoded is the parts of an AuditEvent the tests read back.
type decoded struct {
	ResourceType string
	Subtype      []struct{ System, Code string }
	Action       string
	Recorded     string
	Outcome      string
	OutcomeDesc  string
	Purpose      []struct {
		Coding []struct{ System, Code string }
	} `json:"purposeOfEvent"`
	Agent []struct {
		Requestor bool
		Who       struct {
			Identifier struct{ Value string }
			Display    string
		}
		Role     []struct{ Text string }
		Location struct {
			Identifier struct{ System, Value string }
		}
	}
	Source struct {
		Observer struct{ Display string }
	}
	Entity []struct {
		What struct {
			Reference  string
			Identifier struct{ Value string }
		}
		Role  struct{ Code string }
		Type  struct{ System, Code string }
		Query []byte
	}
}

func decodeEvent(t *testing.T, packed []byte) decoded {
	t.Helper()
	raw := audit.UnpackEvent(packed)
	if !json.Valid(raw) {
		t.Fatalf("not JSON: %s", raw)
	}
	var d decoded
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return d
}

// TestAuditEventShape: the AuditEvent of an interaction says, in the
// places IHE BALP puts them, what was done, by whom (user, role,
// organisation, client), to whose record and what, why, with what outcome,
// when, by which node, and under which request id.
func TestAuditEventShape(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 123456000, time.UTC)
	f := auditFacts{Subtype: "$everything", Action: audit.ActionExecute, Status: 403, Time: at,
		User: "dr-a", Role: "clinician", Org: "A81001", Client: "portal", Node: "node-1", Purpose: "ETREAT",
		Patients: []string{"p1"}, Resources: []string{"Observation/o1"}, Query: "/fhir/Patient/p1/$everything?_count=5",
		RequestID: "req-7", Detail: "refused", Flags: []string{audit.FlagBreakGlass}, Restrict: true}
	e, err := f.entry()
	if err != nil {
		t.Fatal(err)
	}
	d := decodeEvent(t, e.Event)
	if d.ResourceType != "AuditEvent" || d.Action != "E" || d.Outcome != "4" || d.OutcomeDesc != "refused" ||
		d.Recorded != "2026-12-06T10:00:00.123456Z" || d.Source.Observer.Display != "node-1" {
		t.Errorf("event: %+v", d)
	}
	if len(d.Subtype) != 1 || d.Subtype[0].Code != "everything" || d.Subtype[0].System != "http://hl7.org/fhir/restful-interaction" {
		t.Errorf("subtype: %+v", d.Subtype)
	}
	if len(d.Purpose) != 1 || d.Purpose[0].Coding[0].Code != "ETREAT" {
		t.Errorf("purpose: %+v", d.Purpose)
	}
	if len(d.Agent) != 2 || !d.Agent[0].Requestor || d.Agent[0].Who.Identifier.Value != "dr-a" ||
		d.Agent[0].Role[0].Text != "clinician" || d.Agent[0].Location.Identifier.Value != "A81001" ||
		d.Agent[1].Requestor || d.Agent[1].Who.Identifier.Value != "portal" {
		t.Errorf("agents: %+v", d.Agent)
	}
	want := []string{"Patient/p1", "Observation/o1", "", ""}
	if len(d.Entity) != 4 {
		t.Fatalf("entities: %+v", d.Entity)
	}
	for i, w := range want {
		if d.Entity[i].What.Reference != w {
			t.Errorf("entity %d: %+v, want %q", i, d.Entity[i], w)
		}
	}
	if string(d.Entity[2].Query) != f.Query || d.Entity[2].Role.Code != "24" {
		t.Errorf("query entity: %+v", d.Entity[2])
	}
	if d.Entity[3].What.Identifier.Value != "req-7" || d.Entity[3].Type.Code != "XrequestId" {
		t.Errorf("request id entity: %+v", d.Entity[3])
	}
	if e.User != "dr-a" || e.Org != "A81001" || !e.Restricted || !reflect.DeepEqual(e.Flags, f.Flags) || !reflect.DeepEqual(e.Patients, f.Patients) {
		t.Errorf("entry columns: %+v", e)
	}

	// Nobody signed in and no client: the agent is anonymous.
	e, err = auditFacts{Subtype: "read", Action: audit.ActionRead, Status: 401, Time: at, Node: "n"}.entry()
	if err != nil {
		t.Fatal(err)
	}
	d = decodeEvent(t, e.Event)
	if len(d.Agent) != 1 || d.Agent[0].Who.Display != "anonymous" || d.Entity != nil {
		t.Errorf("anonymous: %s", e.Event)
	}
	// A client alone (a backend service) is the requestor.
	e, _ = auditFacts{Action: audit.ActionRead, Status: 200, Time: at, Client: "feed"}.entry()
	if d = decodeEvent(t, e.Event); len(d.Agent) != 1 || !d.Agent[0].Requestor || d.Agent[0].Who.Identifier.Value != "feed" {
		t.Errorf("client alone: %s", e.Event)
	}
}

// FuzzAuditEventJSON: whatever a request puts into the facts (a user name,
// a query, a resource id), the AuditEvent is valid JSON and every value
// reads back as written (invalid UTF-8 as U+FFFD, as encoding/json
// writes it).
func FuzzAuditEventJSON(f *testing.F) {
	f.Add("dr-a", "clinician", "A81001", "portal", "/fhir/Patient?name=\"x\"\\", "p1", "req\n1", "why\u2028")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("\xff\xfe", "<script>", "&", "\x00\x1f", "\u00e9", "\xc3", "\t", "\"")
	f.Fuzz(func(t *testing.T, user, role, org, client, query, patient, reqID, detail string) {
		in := auditFacts{Subtype: "search-type", Action: audit.ActionRead, Status: 200, Time: time.Unix(1, 0),
			User: user, Role: role, Org: org, Client: client, Node: "n", Query: query,
			Resources: []string{patient}, RequestID: reqID, Detail: detail}
		e, err := in.entry()
		if err != nil {
			t.Fatal(err)
		}
		d := decodeEvent(t, e.Event)
		fix := func(s string) string { // each invalid byte becomes U+FFFD
			var b strings.Builder
			for _, r := range s {
				b.WriteRune(r)
			}
			return b.String()
		}
		if user != "" && d.Agent[0].Who.Identifier.Value != fix(user) {
			t.Errorf("user %q read back as %q", user, d.Agent[0].Who.Identifier.Value)
		}
		if d.OutcomeDesc != fix(detail) {
			t.Errorf("detail %q read back as %q", detail, d.OutcomeDesc)
		}
		found := false
		for _, en := range d.Entity {
			if en.What.Reference == fix(patient) && en.Role.Code == "4" {
				found = true
			}
			if en.Role.Code == "24" && string(en.Query) != query {
				t.Errorf("query %q read back as %q", query, en.Query)
			}
		}
		if !found {
			t.Errorf("resource %q not found in %s", patient, e.Event)
		}
		if !utf8.Valid(e.Event) {
			t.Errorf("not UTF-8: %q", e.Event)
		}
	})
}

// TestAlertParamPastInt32: an alert whose entry index is past a FHIR
// integer's range is named by its event alone, never by an out-of-range
// valueInteger.
func TestAlertParamPastInt32(t *testing.T) {
	for _, idx := range []int64{5, 1<<31 - 1, 1 << 31, 1 << 40} {
		p := alertParam(&audit.Entry{Index: idx, Time: time.Unix(0, 0), User: "u", Flags: []string{audit.FlagBreakGlass}}, nil, true)
		raw, _ := json.Marshal(p)
		hasEntry := strings.Contains(string(raw), `"name":"entry"`)
		if want := idx <= 1<<31-1; hasEntry != want {
			t.Errorf("index %d: entry given %v, want %v: %s", idx, hasEntry, want, raw)
		}
		if !strings.Contains(string(raw), fmt.Sprintf(`"reference":"AuditEvent/%d"`, idx)) {
			t.Errorf("index %d: no event reference: %s", idx, raw)
		}
	}
}

// BenchmarkAuditEventEntry measures building the audit entry of one read
// by id (its AuditEvent JSON and fields), which every audited read pays on
// its own path: part of the floor under issue 7's cost target.
func BenchmarkAuditEventEntry(b *testing.B) {
	in := auditFacts{Subtype: "read", Action: audit.ActionRead, Status: 200, Time: time.Now(),
		User: "dr-a", Role: "clinician", Org: "A81001", Client: "ehr", Node: "http://127.0.0.1:8080/fhir",
		Query: "/fhir/Observation/5f0c3b9e-8a1d-4c7e-9b2f-6d4a1e3c8b70", Patients: []string{"0b1ad0f9-2a4c-4d0e-9c6a-3d5b2e8f7a61"},
		Resources: []string{"Observation/5f0c3b9e-8a1d-4c7e-9b2f-6d4a1e3c8b70"}, RequestID: "138a5dec73c1-3"}
	b.ReportAllocs()
	size := 0
	for b.Loop() {
		e, err := in.entry()
		if err != nil {
			b.Fatal(err)
		}
		size = len(e.Event)
	}
	b.ReportMetric(float64(size), "event-bytes")
}
