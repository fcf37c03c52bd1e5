package api_test

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// TestCompartmentRoutes checks the routes of issue 4: compartment search,
// Patient/$everything (GET and POST) and POST /fhir/_search.
func TestCompartmentRoutes(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startNode(t, b.Open(t), nil)
			seed(t, n)
			for _, s := range []scenario{
				{Method: "PUT", Path: "/fhir/Observation/o1", Headers: jsonCT, Body: `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"Pulse"},"subject":{"reference":"Patient/p1"}}`},
				{Method: "PUT", Path: "/fhir/Observation/o2", Headers: jsonCT, Body: `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"Other"}}`},
			} {
				if resp, body := n.do(t, s); resp.StatusCode >= 300 {
					t.Fatalf("%s %s: %d %s", s.Method, s.Path, resp.StatusCode, body)
				}
			}
			n.run(t, []scenario{
				{Name: "compartment search lists the patient's observations only", Method: "GET", Path: "/fhir/Patient/p1/Observation", ExpectedStatus: 200,
					ExpectedContent: []string{`"type":"searchset"`, `"id":"o1"`}, NotExpectedContent: []string{`"id":"o2"`}},
				{Name: "compartment search of every type", Method: "GET", Path: "/fhir/Patient/p1/*", ExpectedStatus: 200,
					ExpectedContent: []string{`"id":"o1"`, `"id":"p1"`}, NotExpectedContent: []string{`"id":"o2"`}},
				{Name: "a type outside the compartment is 400", Method: "GET", Path: "/fhir/Patient/p1/Organization", ExpectedStatus: 400},
				{Name: "history of an instance still routes", Method: "GET", Path: "/fhir/Patient/p1/_history", ExpectedStatus: 200, ExpectedContent: []string{`"type":"history"`}},
				{Name: "$everything by GET", Method: "GET", Path: "/fhir/Patient/p1/$everything", ExpectedStatus: 200,
					ExpectedContent: []string{`"id":"o1"`, `"id":"p1"`}, NotExpectedContent: []string{`"id":"o2"`}},
				{Name: "$everything by POST with a form", Method: "POST", Path: "/fhir/Patient/p1/$everything", Headers: headers("Content-Type", "application/x-www-form-urlencoded"), Body: "_type=Observation",
					ExpectedStatus: 200, ExpectedContent: []string{`"id":"o1"`}, NotExpectedContent: []string{`"id":"o2"`, `"resourceType":"Patient"`}},
				{Name: "$everything of a missing patient is 404", Method: "GET", Path: "/fhir/Patient/nobody/$everything", ExpectedStatus: 404},
				{Name: "system search by POST", Method: "POST", Path: "/fhir/_search", Headers: headers("Content-Type", "application/x-www-form-urlencoded"), Body: "_type=Observation&code:text=puls",
					ExpectedStatus: 200, ExpectedContent: []string{`"id":"o1"`}, NotExpectedContent: []string{`"id":"o2"`}},
			})
		})
	}
}
