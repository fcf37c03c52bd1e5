package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/mpi/service"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

const testBase = "http://sharedcare.test/fhir"

// node is an engine with the patient index, as serve wires them.
type node struct {
	eng *engine.Engine
	mpi *service.Service
	st  store.Store
}

// onEveryBackend runs fn against a fresh node on every test backend.
func onEveryBackend(t *testing.T, fn func(t *testing.T, n *node)) {
	t.Helper()
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			fn(t, open(t, st))
		})
	}
}

func open(t testing.TB, st store.Store) *node {
	t.Helper()
	eng, svc, err := service.Open(context.Background(), st, engine.Config{BaseURL: testBase}, service.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &node{eng: eng, mpi: svc, st: st}
}

// person is the demographics of a test Patient.
type person struct {
	nhs      string
	verified bool
	local    string // a local identifier value (system per organisation)
	org      string
	given    string
	family   string
	dob      string
	sex      string
	postcode string
	line     string
	phone    string
}

func (p person) resource(id string) fhir.Object {
	r := fhir.Object{"resourceType": "Patient"}
	if id != "" {
		r["id"] = id
	}
	var ids []any
	if p.nhs != "" {
		nid := fhir.Object{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p.nhs}
		code := "02"
		if p.verified {
			code = "01"
		}
		nid["extension"] = []any{fhir.Object{
			"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
			"valueCodeableConcept": fhir.Object{"coding": []any{fhir.Object{
				"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland", "code": code}}},
		}}
		ids = append(ids, nid)
	}
	if p.local != "" {
		org := p.org
		if org == "" {
			org = "RXX"
		}
		ids = append(ids, fhir.Object{"system": "https://fhir.sharedcare.dev/Id/" + org + "/patient-id", "value": p.local})
	}
	if len(ids) > 0 {
		r["identifier"] = ids
	}
	r["name"] = []any{fhir.Object{"use": "official", "family": p.family, "given": []any{p.given}}}
	if p.dob != "" {
		r["birthDate"] = p.dob
	}
	if p.sex != "" {
		r["gender"] = p.sex
	}
	if p.postcode != "" || p.line != "" {
		a := fhir.Object{"use": "home"}
		if p.line != "" {
			a["line"] = []any{p.line}
		}
		if p.postcode != "" {
			a["postalCode"] = p.postcode
		}
		r["address"] = []any{a}
	}
	if p.phone != "" {
		r["telecom"] = []any{fhir.Object{"system": "phone", "value": p.phone}}
	}
	return r
}

// Test people. alice and aliceAtHospital are one person with the same
// verified NHS number; bob is someone else entirely.
var (
	alice = person{nhs: "9990000018", verified: true, local: "A1", org: "GP1", given: "Alice", family: "Walker",
		dob: "1961-04-12", sex: "female", postcode: "LS1 4AB", line: "12 High Street", phone: "07700900123"}
	aliceAtHospital = person{nhs: "9990000018", verified: true, local: "H77", org: "RR8", given: "Alice", family: "Walker",
		dob: "1961-04-12", sex: "female", postcode: "LS14AB", line: "12 High St"}
	bob = person{nhs: "9990000026", verified: true, local: "B1", org: "GP1", given: "Robert", family: "Okafor",
		dob: "1988-11-30", sex: "male", postcode: "BD7 1DP", line: "3 Mill Lane", phone: "07700900456"}
)

func create(t testing.TB, n *node, p person) string {
	t.Helper()
	out, err := n.eng.Create(context.Background(), "Patient", fhir.Marshal(p.resource("")), engine.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return "Patient/" + out.Version.ID
}

func read(t testing.TB, n *node, ref string) fhir.Object {
	t.Helper()
	typ, id, _ := strings.Cut(ref, "/")
	v, err := n.eng.Read(context.Background(), typ, id)
	if err != nil {
		t.Fatalf("read %s: %v", ref, err)
	}
	r, err := fhir.ParseObject(v.Body, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func personOf(t testing.TB, n *node, ref string) string {
	t.Helper()
	p, ok := n.mpi.PersonOf(ref)
	if !ok {
		t.Fatalf("%s is not linked to a person", ref)
	}
	return p
}

// links returns "type other" of every Patient.link.
func links(r fhir.Object) []string {
	var out []string
	for _, l := range arr(r["link"]) {
		lo := l.(fhir.Object)
		out = append(out, lo["type"].(string)+" "+lo["other"].(fhir.Object)["reference"].(string))
	}
	slices.Sort(out)
	return out
}

// targets returns the Patient targets of a Person's links.
func targets(r fhir.Object) []string {
	var out []string
	for _, l := range arr(r["link"]) {
		out = append(out, l.(fhir.Object)["target"].(fhir.Object)["reference"].(string))
	}
	slices.Sort(out)
	return out
}

func arr(v any) []any { a, _ := v.([]any); return a }

// decision returns the sub-extensions of the link decision on the Person's
// link to ref, as url -> JSON of the value.
func decision(t testing.TB, p fhir.Object, ref string) map[string]string {
	t.Helper()
	for _, l := range arr(p["link"]) {
		lo := l.(fhir.Object)
		if lo["target"].(fhir.Object)["reference"] != ref {
			continue
		}
		out := map[string]string{"assurance": fmt.Sprint(lo["assurance"])}
		for _, e := range arr(lo["extension"]) {
			eo := e.(fhir.Object)
			if eo["url"] != service.ExtDecision {
				continue
			}
			for _, s := range arr(eo["extension"]) {
				so := s.(fhir.Object)
				for k, v := range so {
					if strings.HasPrefix(k, "value") {
						b, _ := json.Marshal(v)
						url := so["url"].(string)
						if out[url] != "" {
							out[url] += ","
						}
						out[url] += strings.Trim(string(b), `"`)
					}
				}
			}
		}
		return out
	}
	t.Fatalf("Person/%s has no link to %s", p["id"], ref)
	return nil
}

func search(t testing.TB, n *node, typ, query string) []string {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.eng.Search(context.Background(), typ, q)
	if err != nil {
		t.Fatalf("%s?%s: %v", typ, query, err)
	}
	var out []string
	for _, e := range arr(b["entry"]) {
		eo := e.(fhir.Object)
		var r fhir.Object
		switch x := eo["resource"].(type) {
		case json.RawMessage:
			r, _ = fhir.ParseObject(x, 0)
		case fhir.Object:
			r = x
		}
		if r["resourceType"] == "OperationOutcome" {
			continue
		}
		out = append(out, r["resourceType"].(string)+"/"+r["id"].(string))
	}
	slices.Sort(out)
	return out
}

func history(t testing.TB, n *node, ref string) int {
	t.Helper()
	typ, id, _ := strings.Cut(ref, "/")
	b, err := n.eng.History(context.Background(), typ, id, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	return len(arr(b["entry"]))
}

func TestLinkingOnCreate(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		h := create(t, n, aliceAtHospital)
		b := create(t, n, bob)

		pa, ph, pb := personOf(t, n, a), personOf(t, n, h), personOf(t, n, b)
		if pa != ph {
			t.Fatalf("the same verified NHS number and demographics: got persons %s and %s, want one", pa, ph)
		}
		if pb == pa {
			t.Fatalf("bob was linked to alice's person")
		}

		p := read(t, n, "Person/"+pa)
		if got, want := targets(p), sortedOf(a, h); !slices.Equal(got, want) {
			t.Errorf("Person.link targets: got %v, want %v", got, want)
		}
		if p["active"] != true || p["birthDate"] != "1961-04-12" {
			t.Errorf("golden record: active %v birthDate %v", p["active"], p["birthDate"])
		}
		d := decision(t, p, h)
		if d["grade"] != "certain" || d["matched"] == "" || d["score"] == "" || d["reason"] == "" || d["decided"] == "" {
			t.Errorf("the decision on the link to %s lacks grade, matched, score, reason or time: %v", h, d)
		}
		if !strings.Contains(d["reason"], "nhs") {
			t.Errorf("reason %q does not name the NHS number", d["reason"])
		}
		if got, want := links(read(t, n, a)), []string{"seealso " + h}; !slices.Equal(got, want) {
			t.Errorf("Patient.link of %s: got %v, want %v", a, got, want)
		}
		if got, want := links(read(t, n, h)), []string{"seealso " + a}; !slices.Equal(got, want) {
			t.Errorf("Patient.link of %s: got %v, want %v", h, got, want)
		}
		if got := links(read(t, n, b)); len(got) != 0 {
			t.Errorf("bob, alone in his person, has Patient.link %v", got)
		}

		// Every Patient of a person through ordinary search, both ways.
		if got, want := search(t, n, "Patient", "_has:Person:patient:_id="+pa), sortedOf(a, h); !slices.Equal(got, want) {
			t.Errorf("Patient?_has:Person:patient:_id=%s: got %v, want %v", pa, got, want)
		}
		if got, want := search(t, n, "Person", "_id="+pa+"&_include=Person:patient"), sortedOf(a, h, "Person/"+pa); !slices.Equal(got, want) {
			t.Errorf("Person?_id=%s&_include=Person:patient: got %v, want %v", pa, got, want)
		}
	})
}

func sortedOf(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestLinkOnlyUpdateDoesNotRelink(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		h := create(t, n, aliceAtHospital)
		pid := personOf(t, n, a)
		before := history(t, n, "Person/"+pid)

		// A feed re-sends the Patient as it knows it: without the links
		// the index gave it, and with a changed telecom use.
		r := alice.resource(strings.TrimPrefix(a, "Patient/"))
		r["active"] = true
		if _, err := n.eng.Update(context.Background(), "Patient", strings.TrimPrefix(a, "Patient/"), fhir.Marshal(r), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, want := links(read(t, n, a)), []string{"seealso " + h}; !slices.Equal(got, want) {
			t.Errorf("after an update without links: Patient.link %v, want %v restored", got, want)
		}
		if after := history(t, n, "Person/"+pid); after != before {
			t.Errorf("an update that changed no demographics wrote the Person: %d versions, was %d", after, before)
		}
	})
}

func TestLinkingInTransaction(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		bundle := fhir.Object{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			fhir.Object{"fullUrl": "urn:uuid:3f4c0c47-39d6-4f5e-9a7b-0b9d1c1f0a01", "resource": aliceAtHospital.resource(""),
				"request": fhir.Object{"method": "POST", "url": "Patient"}},
			fhir.Object{"fullUrl": "urn:uuid:3f4c0c47-39d6-4f5e-9a7b-0b9d1c1f0a02", "resource": bob.resource(""),
				"request": fhir.Object{"method": "POST", "url": "Patient"}},
		}}
		resp, err := n.eng.Bundle(context.Background(), fhir.Marshal(bundle), engine.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, e := range arr(resp["entry"]) {
			loc := e.(fhir.Object)["response"].(fhir.Object)["location"].(string)
			_, rest, _ := strings.Cut(loc, "Patient/")
			id, _, _ := strings.Cut(rest, "/")
			refs = append(refs, "Patient/"+id)
		}
		if personOf(t, n, refs[0]) != personOf(t, n, a) {
			t.Errorf("a Patient created in a transaction was not linked to its person")
		}
		if personOf(t, n, refs[1]) == personOf(t, n, a) {
			t.Errorf("bob was linked to alice")
		}
	})
}
