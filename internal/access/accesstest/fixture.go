// Package accesstest builds the small health-and-care region the access
// tests run against: organisations of every type that matters to the
// policy, people with records at several of them (linked as the master
// patient index links them), care relationships that are open, recently
// ended and long ended, sensitivity labels, consents (objection,
// withholding, proxies) and the callers who look at them. The expected
// answers live in the tests, written by hand from the policy, never
// computed by the code under test.
package accesstest

import (
	"context"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Organisations of the fixture, by ODS code.
const (
	GP1       = "Z90001" // gp-practice: alice, bob, carol, erin are registered here
	GP2       = "Z90002" // gp-practice: dave
	Acute     = "RZ9"    // acute-trust
	MH        = "RZ8"    // mental-health-trust
	Ambulance = "RZ6"    // ambulance-trust
	Home      = "VZN01"  // nursing-home: erin lives here
	Social    = "Z9A"    // local-authority-adult-social-care
	Pharmacy  = "FZ901"  // community-pharmacy
)

var orgs = [][2]string{
	{GP1, "gp-practice"}, {GP2, "gp-practice"}, {Acute, "acute-trust"}, {MH, "mental-health-trust"},
	{Ambulance, "ambulance-trust"}, {Home, "nursing-home"}, {Social, "local-authority-adult-social-care"},
	{Pharmacy, "community-pharmacy"},
}

// Resource is one resource of the fixture.
type Resource struct {
	Type, ID string
	Source   string   // ODS code of the organisation holding it ("" for none)
	Labels   []string // policy label codes
	Body     fhir.Object
}

// Ref is "Type/ID".
func (r Resource) Ref() string { return r.Type + "/" + r.ID }

func ref(s string) fhir.Object { return fhir.Object{"reference": s} }
func cc(system, code string) fhir.Object {
	return fhir.Object{"coding": []any{fhir.Object{"system": system, "code": code}}}
}

const snomed = "http://snomed.info/sct"

// Resources returns the fixture's resources, relative to now (relationship
// periods are relative to the clock).
func Resources(now time.Time) []Resource {
	day := 24 * time.Hour
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	var out []Resource
	add := func(typ, id, src string, labels []string, body fhir.Object) {
		out = append(out, Resource{Type: typ, ID: id, Source: src, Labels: labels, Body: body})
	}
	patient := func(id, src, gp, link string) {
		b := fhir.Object{"name": []any{fhir.Object{"family": id, "given": []any{"Test"}}}, "gender": "female"}
		if gp != "" {
			b["generalPractitioner"] = []any{ref("Organization/" + gp)}
		}
		if link != "" {
			b["link"] = []any{fhir.Object{"other": ref("Patient/" + link), "type": "seealso"}}
		}
		add("Patient", id, src, nil, b)
	}
	cond := func(id, src, pat, code string, labels ...string) {
		add("Condition", id, src, labels, fhir.Object{"subject": ref("Patient/" + pat), "code": cc(snomed, code)})
	}
	obs := func(id, src, pat string) {
		add("Observation", id, src, nil, fhir.Object{"status": "final", "subject": ref("Patient/" + pat), "code": cc("http://loinc.org", "8867-4")})
	}
	med := func(id, src, pat string) {
		add("MedicationRequest", id, src, nil, fhir.Object{"status": "active", "intent": "order", "subject": ref("Patient/" + pat), "medicationCodeableConcept": cc(snomed, "322236009")})
	}
	enc := func(id, src, pat, org, status string, start time.Time, end *time.Time) {
		period := fhir.Object{"start": ts(start)}
		if end != nil {
			period["end"] = ts(*end)
		}
		add("Encounter", id, src, nil, fhir.Object{"status": status, "class": fhir.Object{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
			"subject": ref("Patient/" + pat), "serviceProvider": ref("Organization/" + org), "period": period})
	}
	consent := func(id, src, pat, kind, provType string, prov fhir.Object) {
		prov["type"] = provType
		add("Consent", id, src, nil, fhir.Object{"status": "active",
			"scope":    cc("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
			"category": []any{cc(access.ConsentKindSystem, kind)},
			"patient":  ref("Patient/" + pat), "policyRule": cc("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN"),
			"provision": prov})
	}
	proxy := func(rp, level string) {
		add("RelatedPerson", rp, GP1, nil, fhir.Object{"patient": ref("Patient/alice")})
		consent("consent-"+rp, GP1, "alice", "proxy", "permit", fhir.Object{
			"actor": []any{fhir.Object{"role": cc("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "NOK"), "reference": ref("RelatedPerson/" + rp)}},
			"class": []any{fhir.Object{"system": access.ProxyLevelSystem, "code": level}}})
	}
	for _, o := range orgs {
		add("Organization", o[0], "", nil, fhir.Object{"identifier": []any{fhir.Object{"system": access.ODSSystem, "value": o[0]}},
			"type": []any{cc(access.OrgTypeSystem, o[1])}, "name": "Organisation " + o[0]})
	}

	// alice: registered at GP1, an open admission at the acute trust, a
	// mental health record, four proxies.
	patient("alice", GP1, GP1, "")
	cond("alice-cond", GP1, "alice", "38341003")
	cond("alice-psy", GP1, "alice", "35489007", "PSY")
	cond("alice-sdv", GP1, "alice", "225930009", "SDV")
	add("Flag", "alice-dv", GP1, []string{"SDV", "V"}, fhir.Object{"status": "active", "subject": ref("Patient/alice"), "code": cc(snomed, "225930009")})
	med("alice-med", GP1, "alice")
	obs("alice-obs", GP1, "alice")
	add("Appointment", "alice-appt", GP1, nil, fhir.Object{"status": "booked", "participant": []any{fhir.Object{"actor": ref("Patient/alice"), "status": "accepted"}}})
	add("ServiceRequest", "alice-sr-pharm", GP1, nil, fhir.Object{"status": "active", "intent": "order", "subject": ref("Patient/alice"), "performer": []any{ref("Organization/" + Pharmacy)}})
	proxy("rp-appt", "appointments")
	proxy("rp-meds", "medicines")
	proxy("rp-summary", "summary")
	proxy("rp-full", "full")
	patient("alice-rz9", Acute, "", "alice")
	enc("alice-rz9-enc", Acute, "alice-rz9", Acute, "in-progress", now.Add(-2*day), nil)
	obs("alice-rz9-obs", Acute, "alice-rz9")
	cond("alice-rz9-hiv", Acute, "alice-rz9", "86406008", "HIV", "R")
	cond("alice-rz9-sdv", Acute, "alice-rz9", "225930009", "SDV")
	patient("alice-rz8", MH, "", "alice")
	enc("alice-rz8-enc", MH, "alice-rz8", MH, "in-progress", now.Add(-10*day), nil)
	cond("alice-rz8-psy", MH, "alice-rz8", "58214004", "PSY", "R")
	cond("alice-rz8-eth", MH, "alice-rz8", "7200002", "ETH")

	// bob objects to sharing.
	patient("bob", GP1, GP1, "")
	cond("bob-cond", GP1, "bob", "38341003")
	consent("bob-objection", GP1, "bob", "objection", "deny", fhir.Object{})
	patient("bob-rz9", Acute, "", "bob")
	enc("bob-rz9-enc", Acute, "bob-rz9", Acute, "in-progress", now.Add(-day), nil)
	obs("bob-rz9-obs", Acute, "bob-rz9")

	// carol withholds her medicines.
	patient("carol", GP1, GP1, "")
	med("carol-med", GP1, "carol")
	consent("carol-withhold", GP1, "carol", "withhold", "deny", fhir.Object{"class": []any{fhir.Object{"system": access.CategorySystem, "code": "medicines"}}})
	patient("carol-rz9", Acute, "", "carol")
	enc("carol-rz9-enc", Acute, "carol-rz9", Acute, "in-progress", now.Add(-day), nil)
	med("carol-rz9-med", Acute, "carol-rz9")
	obs("carol-rz9-obs", Acute, "carol-rz9")

	// dave: registered at GP2, no relationship with anyone else.
	patient("dave", GP2, GP2, "")
	cond("dave-cond", GP2, "dave", "38341003")
	add("Flag", "dave-dv", GP2, []string{"SDV", "V"}, fhir.Object{"status": "active", "subject": ref("Patient/dave"), "code": cc(snomed, "225930009")})

	// erin lives in a nursing home, has a care package from social care
	// and an acute record without an open episode.
	patient("erin", GP1, GP1, "")
	med("erin-med", GP1, "erin")
	cond("erin-psy", GP1, "erin", "35489007", "PSY")
	obs("erin-obs", GP1, "erin")
	patient("erin-vzn", Home, "", "erin")
	enc("erin-vzn-enc", Home, "erin-vzn", Home, "in-progress", now.Add(-300*day), nil)
	add("CarePlan", "erin-vzn-plan", Home, nil, fhir.Object{"status": "active", "intent": "plan", "subject": ref("Patient/erin-vzn")})
	patient("erin-z9a", Social, "", "erin")
	add("EpisodeOfCare", "erin-z9a-eoc", Social, nil, fhir.Object{"status": "active", "patient": ref("Patient/erin-z9a"), "managingOrganization": ref("Organization/" + Social), "period": fhir.Object{"start": ts(now.Add(-100 * day))}})
	patient("erin-rz9", Acute, "", "erin")
	med("erin-rz9-med", Acute, "erin-rz9")
	obs("erin-rz9-obs", Acute, "erin-rz9")

	// frank's acute episode ended 30 days ago, gina's yesterday.
	patient("frank-rz9", Acute, "", "")
	end30 := now.Add(-30 * day)
	enc("frank-rz9-enc", Acute, "frank-rz9", Acute, "finished", now.Add(-35*day), &end30)
	obs("frank-rz9-obs", Acute, "frank-rz9")
	patient("gina-rz9", Acute, "", "")
	end1 := now.Add(-day)
	enc("gina-rz9-enc", Acute, "gina-rz9", Acute, "finished", now.Add(-3*day), &end1)
	obs("gina-rz9-obs", Acute, "gina-rz9")
	return out
}

// Load writes the fixture through the engine as the node operator, each
// resource stamped with its organisation's meta.source and its labels.
func Load(t testing.TB, eng *engine.Engine, now time.Time) []Resource {
	t.Helper()
	ctx := context.Background()
	rs := Resources(now)
	for _, r := range rs {
		b := fhir.Object{"resourceType": r.Type, "id": r.ID}
		for k, v := range r.Body {
			b[k] = v
		}
		meta := fhir.Object{}
		if r.Source != "" {
			meta["source"] = access.Source(r.Source)
		}
		var sec []any
		for _, l := range r.Labels {
			sys := access.ActCodeSystem
			if l == "R" || l == "V" {
				sys = access.ConfidentialitySystem
			}
			sec = append(sec, fhir.Object{"system": sys, "code": l})
		}
		if sec != nil {
			meta["security"] = sec
		}
		if len(meta) > 0 {
			b["meta"] = meta
		}
		if _, err := eng.Update(ctx, r.Type, r.ID, fhir.Marshal(b), engine.WriteOptions{}); err != nil {
			t.Fatalf("load %s: %v", r.Ref(), err)
		}
	}
	return rs
}

// Callers of the fixture: principals as authn's tokens carry them.
var Callers = map[string]auth.Principal{
	"gp-clinician":    {Subject: "dr-gp", Kind: auth.KindUser, Organisation: GP1, Role: "clinician", Scopes: []string{"user/*.cruds"}},
	"gp-nurse":        {Subject: "nurse-gp", Kind: auth.KindUser, Organisation: GP1, Role: "nurse", Scopes: []string{"user/*.cruds"}},
	"gp-clerk":        {Subject: "clerk-gp", Kind: auth.KindUser, Organisation: GP1, Role: "admin-clerk", Scopes: []string{"user/*.cruds"}},
	"gp-privacy":      {Subject: "po-gp", Kind: auth.KindUser, Organisation: GP1, Role: "privacy-officer", Scopes: []string{"user/*.cruds"}},
	"gp-scoped":       {Subject: "dr-gp-app", Kind: auth.KindUser, Organisation: GP1, Role: "clinician", Scopes: []string{"user/Patient.rs", "user/Observation.read"}},
	"gp2-clinician":   {Subject: "dr-gp2", Kind: auth.KindUser, Organisation: GP2, Role: "clinician", Scopes: []string{"user/*.cruds"}},
	"acute-clinician": {Subject: "dr-acute", Kind: auth.KindUser, Organisation: Acute, Role: "clinician", Scopes: []string{"user/*.cruds"}},
	"acute-system":    {Subject: "pas-acute", Kind: auth.KindSystem, Organisation: Acute, Scopes: []string{"system/*.rs"}},
	"mh-clinician":    {Subject: "dr-mh", Kind: auth.KindUser, Organisation: MH, Role: "clinician", Scopes: []string{"user/*.cruds"}},
	"paramedic":       {Subject: "para", Kind: auth.KindUser, Organisation: Ambulance, Role: "paramedic", Scopes: []string{"user/*.cruds"}},
	"care-worker":     {Subject: "carer", Kind: auth.KindUser, Organisation: Home, Role: "care-worker", Scopes: []string{"user/*.cruds"}},
	"social-worker":   {Subject: "sw", Kind: auth.KindUser, Organisation: Social, Role: "social-worker", Scopes: []string{"user/*.cruds"}},
	"pharmacist":      {Subject: "pharm", Kind: auth.KindUser, Organisation: Pharmacy, Role: "pharmacist", Scopes: []string{"user/*.cruds"}},
	"alice":           {Subject: "Patient/alice", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs", "patient/Consent.cruds"}},
	"dave":            {Subject: "Patient/dave", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs", "patient/Consent.cruds"}},
	"proxy-appt":      {Subject: "RelatedPerson/rp-appt", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}},
	"proxy-meds":      {Subject: "RelatedPerson/rp-meds", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}},
	"proxy-summary":   {Subject: "RelatedPerson/rp-summary", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}},
	"proxy-full":      {Subject: "RelatedPerson/rp-full", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}},
}
