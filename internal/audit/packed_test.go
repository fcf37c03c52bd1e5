package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// packedEvent is an event as the API writes it, every fragment packed, and
// the JSON it stands for.
func packedEvent() (packed, plain []byte) {
	packed = []byte(`{` + audit.PackType + audit.PackSubtype + `"read"}]` + audit.PackAction + `"R"` +
		audit.PackPeriod + `"2026-12-08T01:00:00Z"` + audit.PackEnd + `"2026-12-08T01:00:00Z"` +
		audit.PackRecorded + `"2026-12-08T01:00:00Z"` + audit.PackOutcome + `"0"` + audit.PackOutcomeDesc + `"ok"` +
		audit.PackPurpose + `"TREAT"}]}]` + audit.PackAgents + audit.PackUser + `"dr-a"}}` + audit.PackRole + `"clinician"}]` +
		audit.PackLocation + `"A81001"}}}` + audit.PackClientAfter + audit.PackWho + `"portal"` + audit.PackApplication +
		audit.PackSource + `"node-1"` + audit.PackSourceType + audit.PackEntities +
		audit.PackWhat + `"Patient/p1"` + audit.PackPatientRole + `,` + audit.PackWhat + `"Observation/o1"` + audit.PackResourceRole +
		`,` + audit.PackQuery + `L2ZoaXI="}` + `,` + audit.PackWhatID + `"req-1"` + audit.PackRequestIDType + `]}`)
	plain = []byte(`{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},` +
		`"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read"}],"action":"R",` +
		`"period":{"start":"2026-12-08T01:00:00Z","end":"2026-12-08T01:00:00Z"},"recorded":"2026-12-08T01:00:00Z","outcome":"0","outcomeDesc":"ok",` +
		`"purposeOfEvent":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}],` +
		`"agent":[{"requestor":true,"who":{"identifier":{"value":"dr-a"}},"role":[{"text":"clinician"}],` +
		`"location":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}}},` +
		`{"requestor":false,"who":{"identifier":{"value":"portal"}},"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110150","display":"Application"}]}}],` +
		`"source":{"observer":{"display":"node-1"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4"}]},` +
		`"entity":[{"what":{"reference":"Patient/p1"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}},` +
		`{"what":{"reference":"Observation/o1"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4","display":"Domain Resource"}},` +
		`{"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"24","display":"Query"},"query":"L2ZoaXI="},` +
		`{"what":{"identifier":{"value":"req-1"}},"type":{"system":"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType","code":"XrequestId"}}]}`)
	return packed, plain
}

// TestUnpackEvent: a packed event unpacks to its JSON, fragment by
// fragment; JSON with nothing packed (white space between tokens
// included) comes back as it is; the anonymous agent unpacks whole.
func TestUnpackEvent(t *testing.T) {
	packed, plain := packedEvent()
	got := audit.UnpackEvent(packed)
	if !bytes.Equal(got, plain) {
		t.Fatalf("unpacked\n got %s\nwant %s", got, plain)
	}
	if !json.Valid(got) {
		t.Fatalf("not JSON: %s", got)
	}
	for _, same := range []string{"{}", "{\n\t\"a\": 1,\r\n\"b\": [1, 2]\n}", string(plain)} {
		if got := audit.UnpackEvent([]byte(same)); string(got) != same {
			t.Errorf("%q unpacked to %q", same, got)
		}
	}
	anon := `{"agent":[` + audit.PackAnonymous + `,` + audit.PackClientFirst + audit.PackWho + `"feed"` + audit.PackApplication + `]}`
	want := `{"agent":[{"requestor":true,"who":{"display":"anonymous"}},{"requestor":true,"who":{"identifier":{"value":"feed"}},"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110150","display":"Application"}]}}]}`
	if got := audit.UnpackEvent([]byte(anon)); string(got) != want {
		t.Errorf("anonymous and client agents unpacked\n got %s\nwant %s", got, want)
	}
	if len(packed)*3 > len(plain) {
		t.Errorf("packed %d bytes of %d: the fixed fragments are most of an event", len(packed), len(plain))
	}
}

// TestPackedFragmentsAreFixed: the fragments are part of what every audit
// file and spool holds; changing one would change every stored event that
// used it, and with it the entry's leaf. Only new fragments, at unused
// bytes, may be added, and then this digest changes with a review.
func TestPackedFragmentsAreFixed(t *testing.T) {
	var all []byte
	for c := range byte(0x20) {
		all = append(all, c)
		all = append(all, audit.UnpackEvent([]byte{c})...)
	}
	sum := sha256.Sum256(all)
	const want = "a2806a0f8fcc7f2ef75f8f9cd10524c1f7017b569cf6ea22066bafde433d41b0"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("the packed fragments changed: digest %s, want %s", got, want)
	}
}

// TestPackedEventsInTheLog: an event recorded packed is stored packed (in
// a third of the bytes), read back as its JSON, and hashed as its JSON:
// an outside party's leaf of the entry as read checks against the log's
// proofs, and the log verifies.
func TestPackedEventsInTheLog(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			l, st, _ := openLog(t, b)
			ctx := context.Background()
			packed, plain := packedEvent()
			e := &audit.Entry{Time: time.Now(), User: "dr-a", Role: "clinician", Org: "A81001", Client: "portal",
				Patients: []string{"p1"}, Action: audit.ActionRead, Outcome: audit.OutcomeSuccess, Event: packed}
			record(t, l, e)
			record(t, l, entry("dr-b", "A81002", []string{"p1"}))
			rows, err := st.(store.AuditStore).AuditEntries(ctx, 0, 10)
			if err != nil || len(rows) != 2 {
				t.Fatalf("rows: %v, %d", err, len(rows))
			}
			if !bytes.Equal(rows[0].Event, packed) {
				t.Errorf("stored %d bytes, want the %d packed", len(rows[0].Event), len(packed))
			}
			got, err := l.Search(ctx, audit.Query{Patient: "p1", Limit: 10})
			if err != nil || len(got) != 2 {
				t.Fatalf("search: %v, %d", err, len(got))
			}
			var read *audit.Entry
			for _, g := range got {
				if g.Index == e.Index {
					read = g
				}
			}
			if read == nil || !bytes.Equal(read.Event, plain) {
				t.Fatalf("read back: %+v, want its JSON", read)
			}
			c, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.InclusionProof(ctx, read.Index, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, c.Size, c.Root, read.Index, tlog.RecordHash(audit.LeafData(read))); err != nil {
				t.Errorf("the entry as read does not check against the log: %v", err)
			}
			if r := verify(t, l, st, c); !r.OK() {
				t.Errorf("verify: %+v", r.Problems)
			}
		})
	}
}
