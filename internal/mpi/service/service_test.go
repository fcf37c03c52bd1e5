package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/auth"
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
						if r, ok := v.(fhir.Object); ok {
							b, _ = json.Marshal(r["reference"])
						}
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
		// The sender's own link is the sender's: kept as sent.
		r["link"] = []any{fhir.Object{"other": fhir.Object{"reference": "RelatedPerson/carer-1"}, "type": "seealso"}}
		if _, err := n.eng.Update(context.Background(), "Patient", strings.TrimPrefix(a, "Patient/"), fhir.Marshal(r), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, want := links(read(t, n, a)), []string{"seealso " + h, "seealso RelatedPerson/carer-1"}; !slices.Equal(got, want) {
			t.Errorf("after an update without the index's links: Patient.link %v, want %v (restored, the sender's kept)", got, want)
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

// More test people: aliceMoved is alice at another organisation with no NHS
// number, a new address and no phone (a probable match: review);
// aliceWalkden also has a different family name (a possible match: review);
// impostor is bob carrying alice's verified NHS number (a conflict).
var (
	aliceMoved = person{local: "X9", org: "RR8", given: "Alice", family: "Walker", dob: "1961-04-12", sex: "female",
		postcode: "LS2 7XX", line: "4 Park Road"}
	aliceWalkden = person{local: "S4", org: "SC1", given: "Alice", family: "Walkden", dob: "1961-04-12", sex: "female",
		postcode: "LS2 7XX", line: "4 Park Road"}
	impostor = person{nhs: alice.nhs, verified: true, local: "B9", org: "RR8", given: "Robert", family: "Okafor",
		dob: "1988-11-30", sex: "male", postcode: "BD7 1DP", line: "3 Mill Lane"}
)

// reviews returns the open review Tasks focused on ref, as Task id ->
// candidate reference.
func reviews(t testing.TB, n *node, ref string) map[string]fhir.Object {
	t.Helper()
	out := map[string]fhir.Object{}
	for _, id := range search(t, n, "Task", "code="+url.QueryEscape(service.CodeSystem+"|"+service.ReviewCode)+"&status=requested&focus="+ref) {
		out[strings.TrimPrefix(id, "Task/")] = read(t, n, id)
	}
	return out
}

// input returns the value of a review Task's input of that type, as JSON.
func input(t fhir.Object, code string) string {
	for _, in := range arr(t["input"]) {
		io := in.(fhir.Object)
		for _, c := range arr(io["type"].(fhir.Object)["coding"]) {
			if c.(fhir.Object)["code"] == code {
				for k, v := range io {
					if strings.HasPrefix(k, "value") {
						if r, ok := v.(fhir.Object); ok {
							return r["reference"].(string)
						}
						b, _ := json.Marshal(v)
						return strings.Trim(string(b), `"`)
					}
				}
			}
		}
	}
	return ""
}

func onlyTask(t testing.TB, tasks map[string]fhir.Object) (string, fhir.Object) {
	t.Helper()
	if len(tasks) != 1 {
		t.Fatalf("got %d open review Tasks, want 1", len(tasks))
	}
	for id, r := range tasks {
		return id, r
	}
	return "", nil
}

func TestReviewQueueAccept(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		m := create(t, n, aliceMoved)
		if personOf(t, n, m) == personOf(t, n, a) {
			t.Fatalf("a probable match was linked automatically")
		}
		id, task := onlyTask(t, reviews(t, n, m))
		if got := input(task, "candidate"); got != a {
			t.Errorf("candidate: got %s, want %s", got, a)
		}
		if got := input(task, "grade"); got != "probable" && got != "possible" {
			t.Errorf("grade: got %s, want probable or possible", got)
		}
		if input(task, "score") == "" || input(task, "reason") == "" {
			t.Errorf("the Task lacks the score or the reasons: %v", task["input"])
		}
		// The same match seen again (a demographic update) is not queued twice.
		r := aliceMoved.resource(strings.TrimPrefix(m, "Patient/"))
		r["telecom"] = []any{fhir.Object{"system": "email", "value": "alice@example.org"}}
		if _, err := n.eng.Update(context.Background(), "Patient", strings.TrimPrefix(m, "Patient/"), fhir.Marshal(r), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		onlyTask(t, reviews(t, n, m))

		oldPerson := personOf(t, n, m)
		ig := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "ig-officer", Kind: auth.KindUser})
		done, err := n.mpi.Accept(ig, id)
		if err != nil {
			t.Fatal(err)
		}
		if done["status"] != "completed" || !strings.Contains(string(fhir.Marshal(done["businessStatus"])), "accepted") {
			t.Errorf("accepted Task: status %v businessStatus %v", done["status"], done["businessStatus"])
		}
		pid := personOf(t, n, a)
		if personOf(t, n, m) != pid {
			t.Fatalf("after accept %s is not in %s's person", m, a)
		}
		d := decision(t, read(t, n, "Person/"+pid), m)
		if d["method"] != "manual" || d["task"] != "Task/"+id || d["assurance"] != "level4" || d["by"] != "user:ig-officer" {
			t.Errorf("the accepted link's decision: %v", d)
		}
		old := read(t, n, "Person/"+oldPerson)
		if old["active"] != false || !slices.Equal(targets(old), []string{"Person/" + pid}) {
			t.Errorf("the emptied Person: active %v, links %v; want inactive, pointing at Person/%s", old["active"], targets(old), pid)
		}
		if got, want := links(read(t, n, m)), []string{"seealso " + a}; !slices.Equal(got, want) {
			t.Errorf("Patient.link after accept: %v, want %v", got, want)
		}
		if len(reviews(t, n, m)) != 0 {
			t.Errorf("the accepted review is still open")
		}
		if _, err := n.mpi.Accept(context.Background(), id); !fhir.IsKind(err, fhir.EConflict) {
			t.Errorf("accepting a decided Task again: got %v, want a conflict", err)
		}
	})
}

func TestReviewQueueReject(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		w := create(t, n, aliceWalkden)
		id, _ := onlyTask(t, reviews(t, n, w))
		done, err := n.mpi.Reject(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done["status"] != "completed" || !strings.Contains(string(fhir.Marshal(done["businessStatus"])), "rejected") {
			t.Errorf("rejected Task: status %v businessStatus %v", done["status"], done["businessStatus"])
		}
		if personOf(t, n, w) == personOf(t, n, a) {
			t.Errorf("a rejected pair is one person")
		}
		// The rejected pair is never queued again, even when the
		// demographics change and match better.
		r := aliceWalkden.resource(strings.TrimPrefix(w, "Patient/"))
		r["name"] = []any{fhir.Object{"family": "Walker", "given": []any{"Alice"}}}
		if _, err := n.eng.Update(context.Background(), "Patient", strings.TrimPrefix(w, "Patient/"), fhir.Marshal(r), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(reviews(t, n, w)) != 0 {
			t.Errorf("a rejected pair was queued again")
		}
		if personOf(t, n, w) == personOf(t, n, a) {
			t.Errorf("a rejected pair was linked automatically")
		}
		if _, err := n.mpi.Reject(context.Background(), "no-such-task"); !fhir.IsKind(err, fhir.ENotFound) {
			t.Errorf("rejecting a missing Task: got %v, want not found", err)
		}
	})
}

func TestConflictGoesToReviewNeverLinks(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		h := create(t, n, aliceAtHospital)
		x := create(t, n, impostor)
		if personOf(t, n, x) == personOf(t, n, a) {
			t.Fatalf("same NHS number, clearly different people: linked automatically")
		}
		tasks := reviews(t, n, x)
		if len(tasks) != 1 {
			t.Fatalf("got %d review Tasks for the conflict, want 1 (one per person)", len(tasks))
		}
		_, task := onlyTask(t, tasks)
		if input(task, "conflict") != "true" || task["priority"] != "urgent" {
			t.Errorf("the conflict Task: conflict %q priority %v; want true, urgent", input(task, "conflict"), task["priority"])
		}
		if c := input(task, "candidate"); c != a && c != h {
			t.Errorf("the conflict Task's candidate %s is not one of alice's records", c)
		}
		if got := links(read(t, n, x)); len(got) != 0 {
			t.Errorf("the impostor has Patient.link %v", got)
		}
	})
}

func TestMergeAndUnmerge(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		a := create(t, n, alice)
		h := create(t, n, aliceAtHospital)
		w := create(t, n, aliceWalkden) // a duplicate the index did not link
		pa, pw := personOf(t, n, a), personOf(t, n, w)
		if pa == pw {
			t.Fatalf("setup: walkden is already alice's person")
		}
		paVersions, pwVersions := history(t, n, "Person/"+pa), history(t, n, "Person/"+pw)

		params := func(src, dst string) []byte {
			return fhir.Marshal(fhir.Object{"resourceType": "Parameters", "parameter": []any{
				fhir.Object{"name": "source-patient", "valueReference": fhir.Object{"reference": src}},
				fhir.Object{"name": "target-patient", "valueReference": fhir.Object{"reference": dst}},
			}})
		}
		out, err := n.mpi.Merge(ctx, params(w, a))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(fhir.Marshal(out)), `"name":"result"`) {
			t.Errorf("$merge answer has no result: %s", fhir.Marshal(out))
		}
		src, dst := read(t, n, w), read(t, n, a)
		if src["active"] != false {
			t.Errorf("the merged-away Patient is still active")
		}
		if got, want := links(src), sortedOf("replaced-by "+a, "seealso "+h); !slices.Equal(got, want) {
			t.Errorf("source Patient.link: got %v, want %v", got, want)
		}
		if got, want := links(dst), sortedOf("replaces "+w, "seealso "+h); !slices.Equal(got, want) {
			t.Errorf("target Patient.link: got %v, want %v", got, want)
		}
		if personOf(t, n, w) != pa {
			t.Errorf("after merge the source is not in the target's person")
		}
		if got, want := targets(read(t, n, "Person/"+pa)), sortedOf(a, h, w); !slices.Equal(got, want) {
			t.Errorf("target Person links: got %v, want %v", got, want)
		}
		if old := read(t, n, "Person/"+pw); old["active"] != false {
			t.Errorf("the source's emptied Person is still active")
		}
		if d := decision(t, read(t, n, "Person/"+pa), w); d["merged-into"] != a || d["merge-of"] != w || d["previous-person"] != "Person/"+pw {
			t.Errorf("the merge is not recorded on the link: %v", d)
		}
		if _, err := n.mpi.Merge(ctx, params(w, a)); !fhir.IsKind(err, fhir.EConflict) {
			t.Errorf("merging again: got %v, want a conflict", err)
		}
		// A merged-away Patient does not answer $match.
		b, err := n.mpi.Match(ctx, fhir.Marshal(aliceWalkden.resource("")))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(fhir.Marshal(b)), `"fullUrl":"`+testBase+"/"+w+`"`) {
			t.Errorf("$match returned the merged-away Patient")
		}

		if _, err := n.mpi.Unmerge(ctx, params(w, a)); err != nil {
			t.Fatal(err)
		}
		src, dst = read(t, n, w), read(t, n, a)
		if src["active"] != true {
			t.Errorf("after unmerge the source is not active")
		}
		if got := links(src); len(got) != 0 {
			t.Errorf("after unmerge the source has Patient.link %v", got)
		}
		if got, want := links(dst), []string{"seealso " + h}; !slices.Equal(got, want) {
			t.Errorf("after unmerge the target has Patient.link %v, want %v", got, want)
		}
		if personOf(t, n, w) != pw {
			t.Errorf("after unmerge the source is not back in its own person")
		}
		restored := read(t, n, "Person/"+pw)
		if restored["active"] != true || !slices.Equal(targets(restored), []string{w}) {
			t.Errorf("the restored Person: active %v links %v", restored["active"], targets(restored))
		}
		if d := decision(t, restored, w); d["merge-of"] != "" || d["merged-into"] != "" {
			t.Errorf("merge marks left on the restored link: %v", d)
		}
		if got, want := targets(read(t, n, "Person/"+pa)), sortedOf(a, h); !slices.Equal(got, want) {
			t.Errorf("after unmerge the target Person links %v, want %v", got, want)
		}
		// Full history: each Person has a version for the merge and one for
		// the unmerge.
		if got := history(t, n, "Person/"+pa); got != paVersions+2 {
			t.Errorf("target Person history: %d versions, want %d", got, paVersions+2)
		}
		if got := history(t, n, "Person/"+pw); got != pwVersions+2 {
			t.Errorf("source Person history: %d versions, want %d", got, pwVersions+2)
		}
		if _, err := n.mpi.Unmerge(ctx, params(w, a)); !fhir.IsKind(err, fhir.EUnprocessable) {
			t.Errorf("unmerging what is not merged: got %v, want unprocessable", err)
		}
	})
}

func TestDeletedPatientLeavesItsPerson(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		h := create(t, n, aliceAtHospital)
		pid := personOf(t, n, a)
		if _, err := n.eng.Delete(context.Background(), "Patient", strings.TrimPrefix(h, "Patient/"), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := targets(read(t, n, "Person/"+pid)); !slices.Equal(got, []string{a}) {
			t.Errorf("after deleting %s the Person links %v", h, got)
		}
		if got := links(read(t, n, a)); len(got) != 0 {
			t.Errorf("Patient.link still names the deleted Patient: %v", got)
		}
	})
}

func TestStartLinksWhatWasWrittenWithoutTheIndex(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			// An offline import: an engine without the index.
			plain := &node{eng: engine.New(st, engine.Config{BaseURL: testBase})}
			a := create(t, plain, alice)
			h := create(t, plain, aliceAtHospital)
			x := create(t, plain, bob)

			n := open(t, st)
			if _, ok := n.mpi.PersonOf(a); ok {
				t.Fatalf("linked before CatchUp")
			}
			got, err := n.mpi.CatchUp(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != 3 {
				t.Errorf("CatchUp linked %d, want 3", got)
			}
			if personOf(t, n, a) != personOf(t, n, h) || personOf(t, n, x) == personOf(t, n, a) {
				t.Errorf("CatchUp linked wrongly")
			}
			// A restart finds the same persons in the store.
			again := open(t, st)
			if p, _ := again.mpi.PersonOf(h); p != personOf(t, n, a) {
				t.Errorf("after a restart %s is in person %q, want %q", h, p, personOf(t, n, a))
			}
			if got, _ := again.mpi.CatchUp(context.Background()); got != 0 {
				t.Errorf("a second CatchUp linked %d, want 0", got)
			}
		})
	}
}

func TestConcurrentWritesKeepOnePersonAndLinksInStep(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		first := create(t, n, alice)
		firstID := strings.TrimPrefix(first, "Patient/")
		const writers = 6
		refs := make([]string, writers)
		errs := make(chan error, 2*writers)
		done := make(chan struct{})
		// Meanwhile a feed keeps re-sending the first record without its
		// links (each a new version, the phone changing), racing the
		// index's own updates of that Patient.
		go func() {
			defer close(done)
			for i := 0; i < 10; i++ {
				r := alice.resource(firstID)
				r["telecom"] = []any{fhir.Object{"system": "phone", "value": fmt.Sprintf("0770090%04d", i)}}
				if _, err := n.eng.Update(ctx, "Patient", firstID, fhir.Marshal(r), engine.WriteOptions{}); err != nil {
					errs <- err
				}
			}
		}()
		var wg = make(chan struct{}, writers)
		for i := range writers {
			go func() {
				defer func() { wg <- struct{}{} }()
				p := aliceAtHospital
				p.local = fmt.Sprintf("H%d", i)
				out, err := n.eng.Create(ctx, "Patient", fhir.Marshal(p.resource("")), engine.WriteOptions{})
				if err != nil {
					errs <- err
					return
				}
				refs[i] = "Patient/" + out.Version.ID
			}()
		}
		for range writers {
			<-wg
		}
		<-done
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		pid := personOf(t, n, first)
		all := append([]string{first}, refs...)
		for _, ref := range refs {
			if got := personOf(t, n, ref); got != pid {
				t.Errorf("%s is in person %s, want %s", ref, got, pid)
			}
		}
		if got, want := targets(read(t, n, "Person/"+pid)), sortedOf(all...); !slices.Equal(got, want) {
			t.Errorf("Person links %v, want %v", got, want)
		}
		// Whatever the interleaving, every Patient ends with seealso links
		// to every other: the last writer of each Patient was the index,
		// or the feed's write was followed by a restore.
		for _, ref := range all {
			var want []string
			for _, o := range all {
				if o != ref {
					want = append(want, "seealso "+o)
				}
			}
			slices.Sort(want)
			if got := links(read(t, n, ref)); !slices.Equal(got, want) {
				t.Errorf("Patient.link of %s: got %v, want %v", ref, got, want)
			}
		}
	})
}

func TestAnEditedPersonIsFollowed(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		a := create(t, n, alice)
		h := create(t, n, aliceAtHospital)
		b := create(t, n, bob)
		pid := personOf(t, n, a)

		// An administrator deletes the person: its Patients are linked
		// afresh (and, being one person, find each other again).
		if _, err := n.eng.Delete(ctx, "Person", pid, engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		np := personOf(t, n, a)
		if np == pid || personOf(t, n, h) != np {
			t.Fatalf("after deleting Person/%s: %s in %s, %s in %s; want both in one new Person", pid, a, np, h, personOf(t, n, h))
		}
		if got, want := targets(read(t, n, "Person/"+np)), sortedOf(a, h); !slices.Equal(got, want) {
			t.Errorf("the new Person links %v, want %v", got, want)
		}

		// An administrator adds bob to alice's person by hand: followed.
		p := read(t, n, "Person/"+np)
		delete(p, "meta")
		p["link"] = append(arr(p["link"]), fhir.Object{"target": fhir.Object{"reference": b}})
		if _, err := n.eng.Update(ctx, "Person", np, fhir.Marshal(p), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := personOf(t, n, b); got != np {
			t.Errorf("after the hand edit bob is in %s, want %s", got, np)
		}
		if got, want := links(read(t, n, b)), sortedOf("seealso "+a, "seealso "+h); !slices.Equal(got, want) {
			t.Errorf("bob's Patient.link after the hand edit: %v, want %v", got, want)
		}
		bobs := search(t, n, "Person", "patient="+b)
		if !slices.Equal(bobs, []string{"Person/" + np}) {
			t.Errorf("active Persons linking bob: %v, want only Person/%s", bobs, np)
		}
		// A restart reads the same persons back.
		if p, _ := open(t, n.st).mpi.PersonOf(b); p != np {
			t.Errorf("after a restart bob is in %q, want %s", p, np)
		}
	})
}

func TestBatchAndPatchAreLinkedToo(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		a := create(t, n, alice)
		batch := fhir.Object{"resourceType": "Bundle", "type": "batch", "entry": []any{
			fhir.Object{"resource": aliceAtHospital.resource(""), "request": fhir.Object{"method": "POST", "url": "Patient"}},
		}}
		resp, err := n.eng.Bundle(ctx, fhir.Marshal(batch), engine.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		loc := arr(resp["entry"])[0].(fhir.Object)["response"].(fhir.Object)["location"].(string)
		_, rest, _ := strings.Cut(loc, "Patient/")
		id, _, _ := strings.Cut(rest, "/")
		if personOf(t, n, "Patient/"+id) != personOf(t, n, a) {
			t.Errorf("a Patient created in a batch was not linked to its person")
		}

		// Someone else's record, corrected by a JSON Patch into alice's
		// demographics and verified NHS number, moves into alice's person; its own is retired.
		other := aliceAtHospital
		other.nhs, other.verified, other.local, other.org, other.family, other.dob, other.given = "", false, "Z5", "RX1", "Smith", "1972-09-01", "Jane"
		o := create(t, n, other)
		old := personOf(t, n, o)
		// A first correction makes it a probable match of alice (a review).
		probable := `[{"op":"replace","path":"/name/0/family","value":"Walker"},{"op":"replace","path":"/name/0/given/0","value":"Alice"},` +
			`{"op":"replace","path":"/birthDate","value":"1961-04-12"}]`
		if _, err := n.eng.Patch(ctx, "Patient", strings.TrimPrefix(o, "Patient/"), []byte(probable), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(reviews(t, n, o)) == 0 {
			t.Fatalf("setup: the first correction queued no review")
		}
		if old == personOf(t, n, a) {
			t.Fatalf("setup: jane smith is in alice's person")
		}
		patch := `[{"op":"add","path":"/identifier/-","value":` + string(fhir.Marshal(arr(alice.resource("")["identifier"])[0])) + `}]`
		if _, err := n.eng.Patch(ctx, "Patient", strings.TrimPrefix(o, "Patient/"), []byte(patch), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if personOf(t, n, o) != personOf(t, n, a) {
			t.Errorf("after the patch %s is not in alice's person", o)
		}
		if len(reviews(t, n, o)) != 0 {
			t.Errorf("a review the patch settled is still open")
		}
		if r := read(t, n, "Person/"+old); r["active"] != false {
			t.Errorf("the Person it left is still active")
		}
	})
}

func TestAcceptSettlesTheOtherReviewsOfBothPersons(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, n *node) {
		a := create(t, n, alice)
		// Two records of the moved alice under the same social care id
		// (surely one person), which alice's GP record does not carry.
		m := create(t, n, aliceMoved)
		m2 := create(t, n, aliceMoved)
		if personOf(t, n, m2) != personOf(t, n, m) {
			t.Fatalf("setup: the two care records of the moved alice are not one person")
		}
		first, _ := onlyTask(t, reviews(t, n, m))
		if len(reviews(t, n, m2)) != 1 {
			t.Fatalf("setup: the second care record has %d open reviews, want 1", len(reviews(t, n, m2)))
		}
		if _, err := n.mpi.Accept(context.Background(), first); err != nil {
			t.Fatal(err)
		}
		if personOf(t, n, m2) != personOf(t, n, a) {
			t.Errorf("accepting united the persons but %s is not in alice's", m2)
		}
		if got := reviews(t, n, m2); len(got) != 0 {
			t.Errorf("the review the accept settled is still open: %v", got)
		}
	})
}
