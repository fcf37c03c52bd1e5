package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/engine"
	mpiservice "github.com/sharedcare/sharedcare/internal/mpi/service"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// mpiNodeService is the engine, its store's readiness and the patient
// index, wired as serve wires them.
type mpiNodeService struct {
	*engine.Engine
	*mpiservice.Service
	st store.Store
}

func (s mpiNodeService) Ping(ctx context.Context) error { return s.st.Ping(ctx) }

// startMPINode runs the real API over the engine with the patient index.
func startMPINode(t testing.TB, st store.Store) *node {
	t.Helper()
	ln, cfg := loopbackConfig(t)
	cfg.MaxBodyBytes = testMaxBody
	a, err := auth.Load(context.Background(), st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	eng, svc, err := mpiservice.Open(context.Background(), st, engine.Config{BaseURL: cfg.BaseURL}, mpiservice.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(mpiNodeService{eng, svc, st}, a, cfg, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	tok, err := a.IssueAdmin(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &node{url: srv.URL, base: srv.URL + "/fhir", token: tok, st: st, auth: a, handler: h}
}

const (
	mpiAlice = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018",` +
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",` +
		`"valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01"}]}}]},` +
		`{"system":"https://fhir.sharedcare.dev/Id/GP1/patient-id","value":"A1"}],` +
		`"name":[{"family":"Walker","given":["Alice"]}],"gender":"female","birthDate":"1961-04-12",` +
		`"address":[{"line":["12 High Street"],"postalCode":"LS1 4AB"}]}`
	mpiAliceHospital = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018",` +
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",` +
		`"valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01"}]}}]},` +
		`{"system":"https://fhir.sharedcare.dev/Id/RR8/patient-id","value":"H77"}],` +
		`"name":[{"family":"Walker","given":["Alice"]}],"gender":"female","birthDate":"1961-04-12",` +
		`"address":[{"line":["12 High St"],"postalCode":"LS14AB"}]}`
	// The same woman at a care provider: no NHS number, a new address.
	mpiAliceMoved = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.sharedcare.dev/Id/SC1/social-care-id","value":"X9"}],` +
		`"name":[{"family":"Walker","given":["Alice"]}],"gender":"female","birthDate":"1961-04-12",` +
		`"address":[{"line":["4 Park Road"],"postalCode":"LS2 7XX"}]}`
	// Bob carrying alice's verified NHS number: a conflict.
	mpiImpostor = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018",` +
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",` +
		`"valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01"}]}}]}],` +
		`"name":[{"family":"Okafor","given":["Robert"]}],"gender":"male","birthDate":"1988-11-30",` +
		`"address":[{"line":["3 Mill Lane"],"postalCode":"BD7 1DP"}]}`
	mpiBob = `{"resourceType":"Patient","name":[{"family":"Okafor","given":["Robert"]}],"gender":"male","birthDate":"1988-11-30",` +
		`"address":[{"line":["3 Mill Lane"],"postalCode":"BD7 1DP"}]}`
)

// post creates a resource and returns "Type/id".
func (n *node) post(t *testing.T, typ, body string) string {
	t.Helper()
	resp, b := n.do(t, scenario{Method: "POST", Path: "/fhir/" + typ, Body: body, Headers: jsonCT})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %d %s", typ, resp.StatusCode, trim(b))
	}
	_, rest, _ := strings.Cut(resp.Header.Get("Location"), "/fhir/")
	parts := strings.Split(rest, "/")
	return parts[0] + "/" + parts[1]
}

func matchParams(resource string, extra ...string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + resource + `}` + strings.Join(extra, "") + `]}`
}

func mergeParams(src, dst string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"` + src +
		`"}},{"name":"target-patient","valueReference":{"reference":"` + dst + `"}}]}`
}

func TestMPIRoutes(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startMPINode(t, b.Open(t))
			alice := n.post(t, "Patient", mpiAlice)
			hospital := n.post(t, "Patient", mpiAliceHospital)
			moved := n.post(t, "Patient", mpiAliceMoved)
			bob := n.post(t, "Patient", mpiBob)
			impostor := n.post(t, "Patient", mpiImpostor)

			// The review Task the probable match queued, found by search.
			q := "/fhir/Task?code=" + url.QueryEscape(mpiservice.CodeSystem+"|"+mpiservice.ReviewCode) + "&status=requested&focus=" + moved
			resp, body := n.do(t, scenario{Method: "GET", Path: q})
			if resp.StatusCode != 200 {
				t.Fatalf("review queue: %d %s", resp.StatusCode, trim(body))
			}
			var bundle struct {
				Entry []struct {
					Resource struct{ ID, ResourceType string }
				}
			}
			if err := json.Unmarshal(body, &bundle); err != nil || len(bundle.Entry) != 1 {
				t.Fatalf("review queue for %s: want one Task, got %s", moved, trim(body))
			}
			task := bundle.Entry[0].Resource.ID

			// The person of alice, found through the Person's links.
			_, body = n.do(t, scenario{Method: "GET", Path: "/fhir/Person?patient=" + alice})
			var people struct {
				Entry []struct{ Resource struct{ ID string } }
			}
			if err := json.Unmarshal(body, &people); err != nil || len(people.Entry) != 1 {
				t.Fatalf("Person?patient=%s: want one Person, got %s", alice, trim(body))
			}
			person := people.Entry[0].Resource.ID

			userToken, err := n.auth.Issue(auth.Principal{Subject: "clinician", Kind: auth.KindUser, Scopes: []string{"user/Patient.rs"}}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			user := "Bearer " + userToken

			n.run(t, []scenario{
				{Name: "$match finds both of alice's records as certain, best first, with score and grade",
					Method: "POST", Path: "/fhir/Patient/$match", Body: matchParams(mpiAlice), Headers: jsonCT, ExpectedStatus: 200,
					ExpectedContent: []string{`"type":"searchset"`, `"mode":"match"`, `"score":`, `"url":"http://hl7.org/fhir/StructureDefinition/match-grade","valueCode":"certain"`,
						`"fullUrl":"` + n.base + "/" + alice + `"`, `"fullUrl":"` + n.base + "/" + hospital + `"`},
					NotExpectedContent: []string{bob}},
				{Name: "$match with onlyCertainMatches leaves out the probable record",
					Method: "POST", Path: "/fhir/Patient/$match", Body: matchParams(mpiAliceMoved, `,{"name":"onlyCertainMatches","valueBoolean":true}`), Headers: jsonCT, ExpectedStatus: 200,
					ExpectedContent: []string{`"type":"searchset"`}, NotExpectedContent: []string{`"valueCode":"probable"`, `"valueCode":"possible"`}},
				{Name: "$match without onlyCertainMatches shows the probable record",
					Method: "POST", Path: "/fhir/Patient/$match", Body: matchParams(mpiAliceMoved, `,{"name":"count","valueInteger":1}`), Headers: jsonCT, ExpectedStatus: 200,
					ExpectedContent: []string{`"total":1`}},
				{Name: "$match accepts a bare Patient", Method: "POST", Path: "/fhir/Patient/$match", Body: mpiBob, Headers: jsonCT, ExpectedStatus: 200,
					ExpectedContent: []string{n.base + "/" + bob}},
				{Name: "$match of someone unknown is an empty searchset", Method: "POST", Path: "/fhir/Patient/$match",
					Body:    matchParams(`{"resourceType":"Patient","name":[{"family":"Zzyzx","given":["Quentin"]}],"birthDate":"2001-01-01","gender":"male"}`),
					Headers: jsonCT, ExpectedStatus: 200, ExpectedContent: []string{`"total":0`}},
				{Name: "$match without a resource is 400", Method: "POST", Path: "/fhir/Patient/$match",
					Body: `{"resourceType":"Parameters","parameter":[{"name":"count","valueInteger":3}]}`, Headers: jsonCT, ExpectedStatus: 400},
				{Name: "$match of an Observation is 400", Method: "POST", Path: "/fhir/Patient/$match",
					Body: matchParams(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`), Headers: jsonCT, ExpectedStatus: 400},
				{Name: "$match with count 0 is 400", Method: "POST", Path: "/fhir/Patient/$match",
					Body: matchParams(mpiBob, `,{"name":"count","valueInteger":0}`), Headers: jsonCT, ExpectedStatus: 400},
				{Name: "$match with a malformed birth date is refused", Method: "POST", Path: "/fhir/Patient/$match",
					Body: matchParams(`{"resourceType":"Patient","birthDate":"12/04/1961"}`), Headers: jsonCT, ExpectedStatus: 400},
				{Name: "$match of broken JSON is 400", Method: "POST", Path: "/fhir/Patient/$match", Body: `{"resourceType":`, Headers: jsonCT, ExpectedStatus: 400},
				{Name: "$match of a Bundle is 400", Method: "POST", Path: "/fhir/Patient/$match", Body: `{"resourceType":"Bundle","type":"batch"}`, Headers: jsonCT, ExpectedStatus: 400},
				{Name: "$match needs a token", Method: "POST", Path: "/fhir/Patient/$match", Body: matchParams(mpiBob), Headers: jsonCT, Token: "-", ExpectedStatus: 401},

				{Name: "the conflict rule: same NHS number, clearly different people, is an urgent review, never a link",
					Method: "GET", Path: "/fhir/Task?focus=" + impostor + "&code=" + url.QueryEscape(mpiservice.CodeSystem+"|"+mpiservice.ReviewCode), ExpectedStatus: 200,
					ExpectedContent: []string{`"priority":"urgent"`, `"code":"conflict","system":"` + mpiservice.CodeSystem + `"}]},"valueBoolean":true}`}},
				{Name: "the impostor is in no person of alice's", Method: "GET", Path: "/fhir/Person?patient=" + impostor, ExpectedStatus: 200,
					NotExpectedContent: []string{alice, hospital}},
				{Name: "every Patient of a person by _has", Method: "GET", Path: "/fhir/Patient?_has:Person:patient:_id=" + person, ExpectedStatus: 200,
					ExpectedContent: []string{n.base + "/" + alice, n.base + "/" + hospital}, NotExpectedContent: []string{n.base + "/" + bob, n.base + "/" + moved}},
				{Name: "every Patient of a person by _include", Method: "GET", Path: "/fhir/Person?_id=" + person + "&_include=Person:patient", ExpectedStatus: 200,
					ExpectedContent: []string{n.base + "/" + alice, n.base + "/" + hospital, `"mode":"include"`, "mpi-link-decision"}},

				{Name: "a review decision needs the governance role", Method: "POST", Path: "/fhir/Task/" + task + "/$accept", Token: user, ExpectedStatus: 403},
				{Name: "a review decision needs a token", Method: "POST", Path: "/fhir/Task/" + task + "/$accept", Token: "-", ExpectedStatus: 401},
				{Name: "accepting a review links the records", Method: "POST", Path: "/fhir/Task/" + task + "/$accept", ExpectedStatus: 200,
					ExpectedContent: []string{`"status":"completed"`, `"code":"accepted"`, `"Person/` + person + `"`, `"authorString":"admin:`}},
				{Name: "a decided review cannot be decided again", Method: "POST", Path: "/fhir/Task/" + task + "/$reject", ExpectedStatus: 409},
				{Name: "deciding an unknown Task is 404", Method: "POST", Path: "/fhir/Task/no-such-task/$reject", ExpectedStatus: 404},
				{Name: "after accept the person holds three Patients", Method: "GET", Path: "/fhir/Patient?_has:Person:patient:_id=" + person, ExpectedStatus: 200,
					ExpectedContent: []string{n.base + "/" + alice, n.base + "/" + hospital, n.base + "/" + moved}},

				{Name: "a merge needs the governance role", Method: "POST", Path: "/fhir/Patient/$merge", Body: mergeParams(bob, alice), Headers: jsonCT, Token: user, ExpectedStatus: 403},
				{Name: "a merge of a missing Patient is 404", Method: "POST", Path: "/fhir/Patient/$merge", Body: mergeParams("Patient/nope", alice), Headers: jsonCT, ExpectedStatus: 404},
				{Name: "a merge of a Patient into itself is 400", Method: "POST", Path: "/fhir/Patient/$merge", Body: mergeParams(alice, alice), Headers: jsonCT, ExpectedStatus: 400},
				{Name: "a merge without a target is 400", Method: "POST", Path: "/fhir/Patient/$merge",
					Body: `{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"` + bob + `"}}]}`, Headers: jsonCT, ExpectedStatus: 400},
				{Name: "a merge naming an Observation is 400", Method: "POST", Path: "/fhir/Patient/$merge", Body: mergeParams("Observation/1", alice), Headers: jsonCT, ExpectedStatus: 400},
				{Name: "merge", Method: "POST", Path: "/fhir/Patient/$merge", Body: mergeParams(hospital, alice), Headers: jsonCT, ExpectedStatus: 200,
					ExpectedContent: []string{`"name":"result"`, `"type":"replaces"`, hospital}},
				{Name: "the merged-away Patient points at its target", Method: "GET", Path: "/fhir/" + hospital, ExpectedStatus: 200,
					ExpectedContent: []string{`"active":false`, `"other":{"reference":"` + alice + `"},"type":"replaced-by"}`}},
				{Name: "unmerge", Method: "POST", Path: "/fhir/Patient/$unmerge", Body: mergeParams(hospital, alice), Headers: jsonCT, ExpectedStatus: 200,
					NotExpectedContent: []string{`"type":"replaces"`}},
				{Name: "after unmerge the Patient is active again", Method: "GET", Path: "/fhir/" + hospital, ExpectedStatus: 200,
					ExpectedContent: []string{`"active":true`}, NotExpectedContent: []string{"replaced-by"}},
				{Name: "the Person's history holds the merge and the unmerge", Method: "GET", Path: "/fhir/Person/" + person + "/_history", ExpectedStatus: 200,
					ExpectedContent: []string{"merged-into"}},
				{Name: "unmerging twice is 422", Method: "POST", Path: "/fhir/Patient/$unmerge", Body: mergeParams(hospital, alice), Headers: jsonCT, ExpectedStatus: 422},
			})
		})
	}
}

func TestMPIRoutesWithoutAnIndex(t *testing.T) {
	n := startNode(t, backend.OpenSQLiteForTest(t), nil)
	n.run(t, []scenario{
		{Name: "$match on a node without the index is 404", Method: "POST", Path: "/fhir/Patient/$match", Body: matchParams(mpiBob), Headers: jsonCT, ExpectedStatus: 404},
		{Name: "$accept on a node without the index is 404", Method: "POST", Path: "/fhir/Task/x/$accept", ExpectedStatus: 404},
	})
}
