package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/engine"
	mpiservice "github.com/sharedcare/sharedcare/internal/mpi/service"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// Issue 7, point 1: one AuditEvent for every interaction, allowed and
// denied, saying who (user, role, organisation, client), which person
// (whose records were disclosed or written, not only whom the URL named),
// what, why, the outcome and the request id; never a token or password.

// auditNode is the access fixture served with access control and audit
// on, its SMART server holding one user and two clients.
type auditNode struct {
	*accessNode
	log      *audit.Log
	smart    *smartNode
	secrets  []string // every token, password and code handed out
	feedKey  *rsa.PrivateKey
	clinUser string
}

func startAuditNode(t *testing.T, st store.Store) *auditNode {
	t.Helper()
	ctx := context.Background()
	ln, cfg := loopbackConfig(t)
	a, err := auth.Load(ctx, st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
	all := accesstest.Load(t, eng, time.Now())
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	dec := access.New(st, pol)
	l, err := audit.Open(ctx, st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(ctx) })
	h := api.Audited(api.NewWithAccess(service{eng, st}, a, dec, cfg, nil), l, "test-node")
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	admin, err := a.IssueAdmin(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	an := &accessNode{node: &node{url: srv.URL, base: srv.URL + "/fhir", token: admin, st: st, auth: a, handler: h}, dec: dec, tokens: map[string]string{}, all: all}
	n := &auditNode{accessNode: an, log: l, secrets: []string{admin, testPassword}}
	for name, p := range accesstest.Callers {
		tok, err := a.Issue(p, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		an.tokens[name] = "Bearer " + tok
		n.secrets = append(n.secrets, tok)
	}
	an.tokens["admin"] = "Bearer " + admin

	dir := directory.New(st)
	if err := dir.CreateOrg(ctx, directory.Organisation{ODS: accesstest.GP1, Name: "GP one", Type: "gp-practice"}); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	n.clinUser = "gwen"
	if err := dir.CreateUser(ctx, &directory.User{Name: n.clinUser, PasswordHash: hash, Roles: []directory.Assignment{{Org: accesstest.GP1, Role: "clinician"}}}); err != nil {
		t.Fatal(err)
	}
	// hana works in two roles, so her login has a second step.
	if err := dir.CreateUser(ctx, &directory.User{Name: "hana", PasswordHash: hash, Roles: []directory.Assignment{
		{Org: accesstest.GP1, Role: "clinician"}, {Org: accesstest.GP1, Role: "nurse"}}}); err != nil {
		t.Fatal(err)
	}
	sn := &smartNode{node: an.node, redirect: "http://127.0.0.1:9/callback",
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := dir.CreateClient(ctx, &directory.Client{ID: "app", Type: directory.Public, RedirectURIs: []string{sn.redirect},
		Scopes: []string{"user/*.rs", "offline_access"}}); err != nil {
		t.Fatal(err)
	}
	n.feedKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &n.feedKey.PublicKey, KeyID: "rsa-1", Algorithm: "RS384", Use: "sig"}}})
	if err := dir.CreateClient(ctx, &directory.Client{ID: "feed", Type: directory.System, Org: accesstest.GP1, JWKS: jwks,
		Scopes: []string{"system/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	n.smart = sn
	return n
}

// latest returns the newest k entries of the log, newest first.
func (n *auditNode) latest(t *testing.T, k int) []*audit.Entry {
	t.Helper()
	got, err := n.log.Search(context.Background(), audit.Query{Limit: k})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < k {
		t.Fatalf("%d entries in the log, want at least %d", len(got), k)
	}
	return got
}

// event is what the tests read of an entry's AuditEvent.
type event struct {
	ResourceType string `json:"resourceType"`
	Subtype      []struct {
		Code string `json:"code"`
	} `json:"subtype"`
	Action         string `json:"action"`
	Outcome        string `json:"outcome"`
	PurposeOfEvent []struct {
		Coding []struct {
			Code string `json:"code"`
		} `json:"coding"`
	} `json:"purposeOfEvent"`
	Agent []struct {
		Who struct {
			Display    string `json:"display"`
			Identifier struct {
				Value string `json:"value"`
			} `json:"identifier"`
		} `json:"who"`
	} `json:"agent"`
	Entity []struct {
		What struct {
			Reference string `json:"reference"`
		} `json:"what"`
	} `json:"entity"`
}

// decodeEvent reads an entry's event: as the log returns it, or as the API
// hands it to the log (packed).
func decodeEvent(t *testing.T, e *audit.Entry) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(audit.UnpackEvent(e.Event), &ev); err != nil || ev.ResourceType != "AuditEvent" {
		t.Fatalf("entry %d: not an AuditEvent (%v): %s", e.Index, err, e.Event)
	}
	return ev
}

func (ev event) subtype() string {
	if len(ev.Subtype) == 0 {
		return ""
	}
	return ev.Subtype[0].Code
}

func (ev event) purpose() string {
	if len(ev.PurposeOfEvent) == 0 || len(ev.PurposeOfEvent[0].Coding) == 0 {
		return ""
	}
	return ev.PurposeOfEvent[0].Coding[0].Code
}

func (ev event) references() []string {
	var out []string
	for _, en := range ev.Entity {
		if en.What.Reference != "" {
			out = append(out, en.What.Reference)
		}
	}
	return out
}

// want is what one interaction's entry must say.
type want struct {
	subtype, action, outcome string
	user, role, org, client  string // "" for none
	anonymous                bool   // no user and no client: the agent is "anonymous"
	purpose                  string
	patients                 []string // exactly these people (any order)
	resources                []string // at least these Type/id (a "Type/" prefix matches any id of the type)
	notResources             []string
	flags                    []string // exactly these flags
	restricted               bool
	detail                   string // the failure's reason holds this
	anyPatients              bool   // the people are not checked
}

// check compares entry e, of the request that answered with request id
// rid, with w.
func check(t *testing.T, e *audit.Entry, rid string, w want) {
	t.Helper()
	ev := decodeEvent(t, e)
	if got := ev.subtype(); got != strings.TrimPrefix(w.subtype, "$") {
		t.Errorf("subtype %q, want %q", got, w.subtype)
	}
	if e.Action != w.action || ev.Action != w.action {
		t.Errorf("action %q (event %q), want %q", e.Action, ev.Action, w.action)
	}
	if e.Outcome != w.outcome || ev.Outcome != w.outcome {
		t.Errorf("outcome %q (event %q), want %q", e.Outcome, ev.Outcome, w.outcome)
	}
	if e.User != w.user || e.Role != w.role || e.Org != w.org || e.Client != w.client {
		t.Errorf("who: user %q role %q org %q client %q, want %q %q %q %q", e.User, e.Role, e.Org, e.Client, w.user, w.role, w.org, w.client)
	}
	if w.anonymous && (len(ev.Agent) != 1 || ev.Agent[0].Who.Display != "anonymous") {
		t.Errorf("agents %+v, want one anonymous", ev.Agent)
	}
	if got := ev.purpose(); got != w.purpose {
		t.Errorf("purpose %q, want %q", got, w.purpose)
	}
	gotP := slices.Sorted(slices.Values(e.Patients))
	wantP := slices.Sorted(slices.Values(w.patients))
	if !w.anyPatients && !slices.Equal(gotP, wantP) {
		t.Errorf("patients %v, want %v", gotP, wantP)
	}
	refs := ev.references()
	has := func(want string) bool {
		return slices.ContainsFunc(refs, func(r string) bool {
			return r == want || strings.HasSuffix(want, "/") && strings.HasPrefix(r, want)
		})
	}
	for _, r := range w.resources {
		if !has(r) {
			t.Errorf("the entry does not name %s: %v", r, refs)
		}
	}
	for _, r := range w.notResources {
		if has(r) {
			t.Errorf("the entry names %s: %v", r, refs)
		}
	}
	gotF := slices.Sorted(slices.Values(e.Flags))
	wantF := slices.Sorted(slices.Values(w.flags))
	if !slices.Equal(gotF, wantF) {
		t.Errorf("flags %v, want %v", gotF, wantF)
	}
	if e.Restricted != w.restricted {
		t.Errorf("restricted %v, want %v", e.Restricted, w.restricted)
	}
	if w.detail != "" && !strings.Contains(string(e.Event), w.detail) {
		t.Errorf("the event does not say why it failed (%q): %s", w.detail, e.Event)
	}
	if rid == "" || !strings.Contains(string(e.Event), `"`+rid+`"`) {
		t.Errorf("the event does not carry the request id %q: %s", rid, e.Event)
	}
}

// who is the expected who of a fixture caller.
func whoOf(caller string) want {
	if caller == "admin" {
		return want{user: "admin", purpose: "HOPERAT"}
	}
	p := accesstest.Callers[caller]
	w := want{user: p.Subject, role: p.Role, org: p.Organisation, purpose: "TREAT"}
	if p.Kind == auth.KindPatient {
		w.purpose = "PATRQT"
	}
	return w
}

const (
	breakGlassBody = `{"resourceType":"Parameters","parameter":[{"name":"reason","valueCode":"ETREAT"},{"name":"text","valueString":"collapsed"}]}`
	claimBody      = `{"resourceType":"Parameters","parameter":[{"name":"reason","valueCode":"TREAT"},{"name":"text","valueString":"referred"}]}`
)

// TestAuditCoverage performs each interaction of issue 7 as a fixture
// caller, allowed and denied, on every store, and reads its entry back
// from the log.
func TestAuditCoverage(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startAuditNode(t, b.Open(t))
			created := "" // the Observation the create row writes, deleted later

			type row struct {
				name               string
				caller             string // a fixture caller, "admin", or "" for no token
				method, path, body string
				contentType        string
				status             int
				want               want
				extra              []want // a bundle's entries' own entries, in request order
				after              func(t *testing.T, body string)
			}
			rows := []row{
				{name: "capabilities need no token and are audited as anonymous", method: "GET", path: "/fhir/metadata", status: 200,
					want: want{subtype: "capabilities", action: "R", outcome: "0", anonymous: true}},
				{name: "a request without a token is refused and audited as anonymous, naming whose record it asked for",
					method: "GET", path: "/fhir/Patient/alice", status: 401,
					want: want{subtype: "read", action: "R", outcome: "4", anonymous: true, patients: []string{"alice"}}},
				{name: "a read names the person whose record the resource is in, not only the URL", caller: "gp-clinician",
					method: "GET", path: "/fhir/Condition/alice-cond", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"alice"}, resources: []string{"Condition/alice-cond"}}},
				{name: "a person reading their own record does so at their own request", caller: "alice",
					method: "GET", path: "/fhir/Condition/alice-cond", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"alice"}, resources: []string{"Condition/alice-cond"}}},
				{name: "a proxy's search names the person whose record it showed", caller: "proxy-full",
					method: "GET", path: "/fhir/Observation?subject=Patient/alice", status: 200,
					want: want{subtype: "search-type", action: "E", outcome: "0", patients: []string{"alice"}, resources: []string{"Observation/alice-obs"}}},
				{name: "a system client's read names its organisation", caller: "acute-system",
					method: "GET", path: "/fhir/Observation/alice-rz9-obs", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"alice-rz9"}, resources: []string{"Observation/alice-rz9-obs"}}},
				{name: "a withheld read is a denial that discloses no one", caller: "care-worker",
					method: "GET", path: "/fhir/Condition/dave-cond", status: 404,
					want: want{subtype: "read", action: "R", outcome: "4", notResources: []string{"Condition/dave-cond"}}},
				{name: "a read of a V-labelled flag is labelled and restricted", caller: "gp-clinician",
					method: "GET", path: "/fhir/Flag/alice-dv", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"alice"}, resources: []string{"Flag/alice-dv"},
						flags: []string{audit.FlagLabelled}, restricted: true}},
				{name: "vread", caller: "gp-clinician", method: "GET", path: "/fhir/Condition/alice-cond/_history/1", status: 200,
					want: want{subtype: "vread", action: "R", outcome: "0", patients: []string{"alice"}, resources: []string{"Condition/alice-cond"}}},
				{name: "a search names the people and resources of its matches and includes", caller: "gp-clinician",
					method: "GET", path: "/fhir/Observation?_id=alice-rz9-obs&_include=Observation:subject", status: 200,
					// Patient/alice-rz9 links to alice: it is in her compartment too.
					want: want{subtype: "search-type", action: "E", outcome: "0", patients: []string{"alice", "alice-rz9"},
						resources: []string{"Observation/alice-rz9-obs", "Patient/alice-rz9"}}},
				{name: "a search that finds labelled records is flagged labelled", caller: "gp-clinician",
					method: "GET", path: "/fhir/Condition?subject=Patient/alice", status: 200,
					want: want{subtype: "search-type", action: "E", outcome: "0", patients: []string{"alice"},
						resources: []string{"Condition/alice-cond", "Condition/alice-psy"}, flags: []string{audit.FlagLabelled}}},
				{name: "a malformed search is a denial", caller: "gp-clinician",
					method: "GET", path: "/fhir/Observation?_has:Nope=1&_count=bad", status: 400,
					want: want{subtype: "search-type", action: "E", outcome: "4"}},
				{name: "history of an instance", caller: "gp-clinician", method: "GET", path: "/fhir/Condition/alice-cond/_history", status: 200,
					want: want{subtype: "history-instance", action: "E", outcome: "0", patients: []string{"alice"}, resources: []string{"Condition/alice-cond"}}},
				{name: "history of a type by the operator", caller: "admin", method: "GET", path: "/fhir/Flag/_history", status: 200,
					want: want{subtype: "history-type", action: "E", outcome: "0", patients: []string{"alice", "dave"},
						resources: []string{"Flag/alice-dv", "Flag/dave-dv"}, flags: []string{audit.FlagLabelled}, restricted: true}},
				{name: "$everything names every linked record it disclosed", caller: "gp-clinician", method: "GET", path: "/fhir/Patient/bob/$everything", status: 200,
					want: want{subtype: "$everything", action: "E", outcome: "0", patients: []string{"bob"},
						resources: []string{"Patient/bob", "Condition/bob-cond"}}},
				{name: "create names the person of what it wrote", caller: "gp-clinician", method: "POST", path: "/fhir/Observation", body: obsFor("alice"), status: 201,
					want: want{subtype: "create", action: "C", outcome: "0", patients: []string{"alice"}, resources: []string{"Observation/"}},
					after: func(t *testing.T, body string) {
						var o struct{ ID string }
						json.Unmarshal([]byte(body), &o)
						created = o.ID
					}},
				{name: "a refused create is a denial", caller: "care-worker", method: "POST", path: "/fhir/Condition",
					body: `{"resourceType":"Condition","subject":{"reference":"Patient/dave"}}`, status: 403,
					want: want{subtype: "create", action: "C", outcome: "4"}},
				{name: "update", caller: "gp-clinician", method: "PUT", path: "/fhir/Observation/alice-obs",
					body: `{"resourceType":"Observation","id":"alice-obs","status":"amended","code":{"text":"pulse"},"subject":{"reference":"Patient/alice"}}`, status: 200,
					want: want{subtype: "update", action: "U", outcome: "0", patients: []string{"alice"}, resources: []string{"Observation/alice-obs"}}},
				{name: "patch", caller: "gp-clinician", method: "PATCH", path: "/fhir/Observation/alice-obs", contentType: "application/json-patch+json",
					body: `[{"op":"replace","path":"/status","value":"final"}]`, status: 200,
					want: want{subtype: "patch", action: "U", outcome: "0", patients: []string{"alice"}, resources: []string{"Observation/alice-obs"}}},
				{name: "a refused update is a denial", caller: "pharmacist", method: "PUT", path: "/fhir/Condition/alice-cond",
					body: `{"resourceType":"Condition","id":"alice-cond","subject":{"reference":"Patient/alice"}}`, status: 403,
					want: want{subtype: "update", action: "U", outcome: "4", detail: "you may not change Condition/alice-cond"}},
				{name: "history of the whole system by the operator", caller: "admin", method: "GET", path: "/fhir/_history?_count=3", status: 200,
					want: want{subtype: "history-system", action: "E", outcome: "0", anyPatients: true}},
				{name: "a system search", caller: "gp-clinician", method: "GET", path: "/fhir?_type=Condition&_id=carol-none", status: 200,
					want: want{subtype: "search-system", action: "E", outcome: "0"}},
				{name: "$validate writes nothing and discloses no one", caller: "gp-clinician", method: "POST", path: "/fhir/Observation/$validate", body: obsFor("alice"), status: 200,
					want: want{subtype: "$validate", action: "E", outcome: "0"}},
				{name: "a batch has an entry per entry: a read, a search and a delete, each with its own people", caller: "gp-clinician", method: "POST", path: "/fhir",
					body: `{"resourceType":"Bundle","type":"batch","entry":[
						{"request":{"method":"GET","url":"Condition/alice-cond"}},
						{"request":{"method":"GET","url":"MedicationRequest?subject=Patient/erin"}},
						{"request":{"method":"DELETE","url":"Observation/erin-obs"}},
						{"request":{"method":"GET","url":"Condition/dave-cond"}}]}`, status: 200,
					after: func(t *testing.T, body string) {
						if strings.Contains(body, `"id":"dave-cond"`) || !strings.Contains(body, "404 Not Found") {
							t.Errorf("a batch read by id disclosed what a read withholds: %s", body)
						}
					},
					want: want{subtype: "batch", action: "E", outcome: "0", patients: []string{"alice", "erin"},
						resources: []string{"Condition/alice-cond", "MedicationRequest/erin-med", "Observation/erin-obs"}, notResources: []string{"Condition/dave-cond"}},
					extra: []want{
						{subtype: "read", action: "R", outcome: "0", patients: []string{"alice"}, resources: []string{"Condition/alice-cond"}},
						{subtype: "search-type", action: "E", outcome: "0", patients: []string{"erin"}, resources: []string{"MedicationRequest/erin-med"}},
						{subtype: "delete", action: "D", outcome: "0", patients: []string{"erin"}, resources: []string{"Observation/erin-obs"}},
						// Withheld: a denial that names only whom the URL named (nobody).
						{subtype: "read", action: "R", outcome: "4", notResources: []string{"Condition/dave-cond"}},
					}},
				{name: "a transaction has an entry of its own per entry", caller: "gp-clinician", method: "POST", path: "/fhir",
					body: `{"resourceType":"Bundle","type":"transaction","entry":[
						{"fullUrl":"urn:uuid:1","resource":` + obsFor("alice") + `,"request":{"method":"POST","url":"Observation"}},
						{"fullUrl":"urn:uuid:2","resource":` + obsFor("erin") + `,"request":{"method":"POST","url":"Observation"}}]}`, status: 200,
					want: want{subtype: "transaction", action: "E", outcome: "0", patients: []string{"alice", "erin"}, resources: []string{"Observation/"}},
					extra: []want{
						{subtype: "create", action: "C", outcome: "0", patients: []string{"alice"}, resources: []string{"Observation/"}},
						{subtype: "create", action: "C", outcome: "0", patients: []string{"erin"}, resources: []string{"Observation/"}},
					}},
				{name: "a refused transaction is one denial", caller: "care-worker", method: "POST", path: "/fhir",
					body: `{"resourceType":"Bundle","type":"transaction","entry":[
						{"resource":{"resourceType":"Condition","subject":{"reference":"Patient/dave"}},"request":{"method":"POST","url":"Condition"}}]}`, status: 403,
					want: want{subtype: "transaction", action: "E", outcome: "4"}},
				{name: "break-glass is flagged, with its reason as purpose", caller: "paramedic", method: "POST", path: "/fhir/Patient/dave/$break-glass", body: breakGlassBody, status: 200,
					want: want{subtype: "$break-glass", action: "E", outcome: "0", patients: []string{"dave"}, flags: []string{audit.FlagBreakGlass}, purpose: "ETREAT"}},
				{name: "a read under break-glass is flagged, for emergency treatment", caller: "paramedic", method: "GET", path: "/fhir/Condition/dave-cond", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"dave"}, resources: []string{"Condition/dave-cond"},
						flags: []string{audit.FlagBreakGlass}, purpose: "ETREAT"}},
				{name: "break-glass over an objection", caller: "paramedic", method: "POST", path: "/fhir/Patient/bob/$break-glass", body: breakGlassBody, status: 200,
					want: want{subtype: "$break-glass", action: "E", outcome: "0", patients: []string{"bob"}, flags: []string{audit.FlagBreakGlass}, purpose: "ETREAT"}},
				{name: "a read over an objection is flagged as its override", caller: "paramedic", method: "GET", path: "/fhir/Condition/bob-cond", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"bob"}, resources: []string{"Condition/bob-cond"},
						flags: []string{audit.FlagBreakGlass, audit.FlagObjectionOverride}, purpose: "ETREAT"}},
				{name: "a refused break-glass is a denial, unflagged", caller: "care-worker", method: "POST", path: "/fhir/Patient/dave/$break-glass", body: breakGlassBody, status: 403,
					want: want{subtype: "$break-glass", action: "E", outcome: "4", patients: []string{"dave"}, detail: "your role may not break glass"}},
				{name: "a self-claimed relationship is flagged", caller: "mh-clinician", method: "POST", path: "/fhir/Patient/dave/$claim-relationship", body: claimBody, status: 200,
					want: want{subtype: "$claim-relationship", action: "E", outcome: "0", patients: []string{"dave"}, flags: []string{audit.FlagSelfClaimed}}},
				{name: "a read under a self-claim is flagged", caller: "mh-clinician", method: "GET", path: "/fhir/Condition/dave-cond", status: 200,
					want: want{subtype: "read", action: "R", outcome: "0", patients: []string{"dave"}, resources: []string{"Condition/dave-cond"}, flags: []string{audit.FlagSelfClaimed}}},
				{name: "a person's consent change names them", caller: "alice", method: "POST", path: "/fhir/Consent",
					body: `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
						"category":[{"coding":[{"system":"` + access.ConsentKindSystem + `","code":"withhold"}]}],"patient":{"reference":"Patient/alice"},
						"policyRule":{"text":"withhold"},"provision":{"type":"deny","class":[{"system":"` + access.CategorySystem + `","code":"appointments"}]}}`, status: 201,
					want: want{subtype: "create", action: "C", outcome: "0", patients: []string{"alice"}, resources: []string{"Consent/"}}},
				{name: "a consent change refused to another organisation", caller: "acute-clinician", method: "POST", path: "/fhir/Consent",
					body: `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
						"category":[{"coding":[{"system":"` + access.ConsentKindSystem + `","code":"objection"}]}],"patient":{"reference":"Patient/alice"},"policyRule":{"text":"x"},"provision":{"type":"deny"}}`, status: 403,
					want: want{subtype: "create", action: "C", outcome: "4"}},
				{name: "a relationship change (an episode of care) names the person", caller: "gp-clinician", method: "POST", path: "/fhir/EpisodeOfCare",
					body: `{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/carol"},"managingOrganization":{"reference":"Organization/Z90001"}}`, status: 201,
					want: want{subtype: "create", action: "C", outcome: "0", patients: []string{"carol"}, resources: []string{"EpisodeOfCare/"}}},
				{name: "a merge decision names both records", caller: "admin", method: "POST", path: "/fhir/Patient/$merge",
					body: `{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"Patient/frank-rz9"}},{"name":"target-patient","valueReference":{"reference":"Patient/gina-rz9"}}]}`, status: 404,
					want: want{subtype: "$merge", action: "E", outcome: "4", patients: []string{"frank-rz9", "gina-rz9"}}},
				{name: "a merge by anyone but the operator is refused", caller: "gp-clinician", method: "POST", path: "/fhir/Patient/$unmerge",
					body: `{"resourceType":"Parameters"}`, status: 403,
					want: want{subtype: "$unmerge", action: "E", outcome: "4"}},
			}
			for _, r := range rows {
				if !t.Run(r.name, func(t *testing.T) {
					s := scenario{Method: r.method, Path: r.path, Body: r.body, Token: "-", Headers: map[string]string{}}
					if r.caller != "" {
						s.Token = n.tokens[r.caller]
					}
					if r.body != "" {
						s.Headers["Content-Type"] = "application/fhir+json"
						if r.contentType != "" {
							s.Headers["Content-Type"] = r.contentType
						}
					}
					resp, body := n.do(t, s)
					if resp.StatusCode != r.status {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, r.status, trim(body))
					}
					if r.after != nil {
						r.after(t, string(body))
					}
					rid := resp.Header.Get("X-Request-Id")
					w := r.want
					if r.caller != "" {
						who := whoOf(r.caller)
						w.user, w.role, w.org = who.user, who.role, who.org
						if w.purpose == "" {
							w.purpose = who.purpose
						}
					}
					got := n.latest(t, 1+len(r.extra))
					check(t, got[0], rid, w)
					for i, x := range r.extra {
						x.user, x.role, x.org, x.purpose = w.user, w.role, w.org, w.purpose
						t.Run("entry "+string(rune('0'+i)), func(t *testing.T) {
							check(t, got[len(r.extra)-i], rid, x)
						})
					}
				}) {
					t.FailNow() // later rows depend on the earlier ones' writes and grants
				}
			}

			t.Run("delete names the person of what it removed", func(t *testing.T) {
				resp, body := n.do(t, scenario{Method: "DELETE", Path: "/fhir/Observation/" + created, Token: n.tokens["gp-clinician"]})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("delete: %d %s", resp.StatusCode, trim(body))
				}
				w := whoOf("gp-clinician")
				w.subtype, w.action, w.outcome, w.patients, w.resources = "delete", "D", "0", []string{"alice"}, []string{"Observation/" + created}
				check(t, n.latest(t, 1)[0], resp.Header.Get("X-Request-Id"), w)
			})

			n.testAuthEndpoints(t)

			// No entry carries a token, a password or a code.
			all, err := n.log.Search(context.Background(), audit.Query{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range all {
				for _, s := range n.secrets {
					if s != "" && strings.Contains(string(e.Event), s) {
						t.Fatalf("entry %d carries a secret: %s", e.Index, e.Event)
					}
				}
			}
		})
	}
}

// testAuthEndpoints: login (success and failure), token issue (an
// authorisation code and client credentials, success and failure) and
// logout (revocation) are each an entry naming the user or client.
func (n *auditNode) testAuthEndpoints(t *testing.T) {
	sn := n.smart
	last := func(t *testing.T, rid string, w want) {
		t.Helper()
		check(t, n.latest(t, 1)[0], rid, w)
	}
	t.Run("a failed login names the user, never the password", func(t *testing.T) {
		_, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {n.clinUser}, "password": {"wrong password 123"}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login with a wrong password: %d %s", resp.StatusCode, body)
		}
		n.secrets = append(n.secrets, "wrong password 123")
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "login", action: "E", outcome: "4", user: n.clinUser})
	})
	var refresh string
	t.Run("a login and the token it leads to name the user, never the code or the token", func(t *testing.T) {
		verifier, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs offline_access")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {n.clinUser}, "password": {testPassword}}, "")
		code := sn.codeFrom(t, resp, body)
		n.secrets = append(n.secrets, code)
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "login", action: "E", outcome: "0", user: n.clinUser, role: "clinician", org: accesstest.GP1, client: "app"})

		resp, body = sn.post(t, "/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect},
			"code_verifier": {verifier}, "client_id": {"app"}}, "")
		var tr tokenResponse
		if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
			t.Fatalf("token: %d %s", resp.StatusCode, body)
		}
		n.secrets = append(n.secrets, tr.AccessToken, tr.RefreshToken, verifier)
		refresh = tr.RefreshToken
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "token", action: "E", outcome: "0", user: n.clinUser, role: "clinician", org: accesstest.GP1, client: "app"})

		// A code used twice is refused, and the refusal is audited.
		resp, _ = sn.post(t, "/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect},
			"code_verifier": {verifier}, "client_id": {"app"}}, "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("second redemption: %d", resp.StatusCode)
		}
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "token", action: "E", outcome: "4", client: "app"})
	})
	t.Run("both steps of a login with a choice of role name the user, the second the role chosen", func(t *testing.T) {
		_, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {"hana"}, "password": {testPassword}}, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "nurse") {
			t.Fatalf("first step: %d %s", resp.StatusCode, body)
		}
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "login", action: "E", outcome: "0", user: "hana", client: "app"})
		resp, body = sn.post(t, "/auth/login", url.Values{"request": {req}, "role": {accesstest.GP1 + ":nurse"}}, "")
		n.secrets = append(n.secrets, sn.codeFrom(t, resp, body))
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "login", action: "E", outcome: "0", user: "hana", role: "nurse", org: accesstest.GP1, client: "app"})
	})
	t.Run("logout (revocation) names whose grant ended", func(t *testing.T) {
		// The code used twice above ended that session (and so its refresh
		// token): log in again for a live one.
		verifier, challenge := pkce()
		req := sn.startLogin(t, challenge, "user/*.rs offline_access")
		resp, body := sn.post(t, "/auth/login", url.Values{"request": {req}, "username": {n.clinUser}, "password": {testPassword}}, "")
		code := sn.codeFrom(t, resp, body)
		resp, body = sn.post(t, "/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {sn.redirect},
			"code_verifier": {verifier}, "client_id": {"app"}}, "")
		var tr tokenResponse
		if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.RefreshToken == "" {
			t.Fatalf("token: %d %s", resp.StatusCode, body)
		}
		n.secrets = append(n.secrets, code, verifier, tr.AccessToken, tr.RefreshToken)
		refresh = tr.RefreshToken
		resp, body = sn.post(t, "/auth/revoke", url.Values{"token": {refresh}, "client_id": {"app"}}, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d %s", resp.StatusCode, body)
		}
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "logout", action: "E", outcome: "0", user: n.clinUser, role: "clinician", org: accesstest.GP1, client: "app"})
	})
	t.Run("a refused OpenID Connect callback is a failed login, without its code", func(t *testing.T) {
		resp, _ := sn.get(t, "/auth/oidc/callback?state=unknown&code=SECRETOIDCCODE", "")
		if resp.StatusCode < 400 {
			t.Fatalf("callback with an unknown state: %d", resp.StatusCode)
		}
		n.secrets = append(n.secrets, "SECRETOIDCCODE")
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "login", action: "E", outcome: "4", anonymous: true})
	})
	t.Run("client credentials name the client and its organisation", func(t *testing.T) {
		a := assertion(t, jose.RS384, n.feedKey, "rsa-1", "feed", sn.url+"/auth/token", nil)
		resp, body := sn.post(t, "/auth/token", backendForm(a, "system/Patient.rs"), "")
		var tr tokenResponse
		if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("client credentials: %d %s", resp.StatusCode, body)
		}
		n.secrets = append(n.secrets, a, tr.AccessToken)
		p, err := n.auth.Verify(context.Background(), tr.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "token", action: "E", outcome: "0", user: p.Subject, role: p.Role, org: accesstest.GP1, client: "feed"})

		// An assertion signed with another key is refused; the entry names
		// the client it claimed to be.
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		bad := assertion(t, jose.RS384, other, "rsa-1", "feed", sn.url+"/auth/token", nil)
		resp, _ = sn.post(t, "/auth/token", backendForm(bad, "system/Patient.rs"), "")
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("forged assertion: %d", resp.StatusCode)
		}
		n.secrets = append(n.secrets, bad)
		last(t, resp.Header.Get("X-Request-Id"), want{subtype: "token", action: "E", outcome: "4", client: "feed"})
	})
}

// TestAuditAuthFailsClosed: when the log cannot record a token request's
// entry, no token is returned.
func TestAuditAuthFailsClosed(t *testing.T) {
	st := backend.ForTests(t)[0].Open(t)
	ctx := context.Background()
	cfg := config.Default()
	srv := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + srv.Listener.Addr().String() + "/fhir"
	a, err := auth.Load(ctx, st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.New(st)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "RS384", Use: "sig"}}})
	if err := dir.CreateOrg(ctx, directory.Organisation{ODS: "A81001", Name: "Elm Street Surgery", Type: "gp-practice"}); err != nil {
		t.Fatal(err)
	}
	if err := dir.CreateClient(ctx, &directory.Client{ID: "feed", Type: directory.System, Org: "A81001", JWKS: jwks, Scopes: []string{"system/Patient.rs"}}); err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
	srv.Config.Handler = api.Audited(api.New(service{eng, st}, a, cfg, nil), failingRecorder{}, "test-node")
	srv.Start()
	t.Cleanup(srv.Close)
	form := backendForm(assertion(t, jose.RS384, key, "k", "feed", srv.URL+"/auth/token", nil), "system/Patient.rs")
	resp, err := http.Post(srv.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusServiceUnavailable || out["access_token"] != nil || out["error"] != "temporarily_unavailable" {
		t.Fatalf("token with a failing audit log: %d %v", resp.StatusCode, out)
	}
}

// TestAuditLinkDecisions: the master patient index's decisions ($match,
// review accept and reject, $merge) name the records they concern, on
// every store.
func TestAuditLinkDecisions(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			ln, cfg := loopbackConfig(t)
			a, err := auth.Load(ctx, st, cfg.BaseURL)
			if err != nil {
				t.Fatal(err)
			}
			eng, svc, err := mpiservice.Open(ctx, st, engine.Config{BaseURL: cfg.BaseURL}, mpiservice.Config{})
			if err != nil {
				t.Fatal(err)
			}
			l, err := audit.Open(ctx, st, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close(ctx) })
			h := api.Audited(api.New(mpiNodeService{eng, svc, st}, a, cfg, nil), l, "test-node")
			srv := httptest.NewUnstartedServer(h)
			srv.Listener.Close()
			srv.Listener = ln
			srv.Start()
			t.Cleanup(srv.Close)
			tok, err := a.IssueAdmin(time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			n := &auditNode{accessNode: &accessNode{node: &node{url: srv.URL, base: srv.URL + "/fhir", token: tok, st: st, auth: a, handler: h}}, log: l}
			alice := n.post(t, "Patient", mpiAlice)
			hospital := n.post(t, "Patient", mpiAliceHospital)
			moved := n.post(t, "Patient", mpiAliceMoved)
			id := func(ref string) string { return strings.TrimPrefix(ref, "Patient/") }

			admin := func(method, path, body string, status int, w want) {
				t.Helper()
				resp, got := n.do(t, scenario{Method: method, Path: path, Body: body, Headers: jsonCT})
				if resp.StatusCode != status {
					t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, trim(got))
				}
				w.user, w.purpose = "admin", "HOPERAT"
				check(t, n.latest(t, 1)[0], resp.Header.Get("X-Request-Id"), w)
			}
			t.Run("$match names the records it disclosed", func(t *testing.T) {
				admin("POST", "/fhir/Patient/$match", matchParams(mpiAlice), 200, want{subtype: "$match", action: "E", outcome: "0",
					anyPatients: true, resources: []string{alice, hospital}})
				if e := n.latest(t, 1)[0]; !slices.Contains(e.Patients, id(alice)) || !slices.Contains(e.Patients, id(hospital)) {
					t.Errorf("patients %v, want %s and %s among them", e.Patients, id(alice), id(hospital))
				}
			})
			q := "/fhir/Task?code=" + url.QueryEscape(mpiservice.CodeSystem+"|"+mpiservice.ReviewCode) + "&status=requested&focus=" + moved
			resp, body := n.do(t, scenario{Method: "GET", Path: q})
			var bundle struct {
				Entry []struct{ Resource struct{ ID string } }
			}
			if err := json.Unmarshal(body, &bundle); err != nil || resp.StatusCode != 200 || len(bundle.Entry) != 1 {
				t.Fatalf("review queue: %d %s", resp.StatusCode, trim(body))
			}
			task := bundle.Entry[0].Resource.ID
			t.Run("accepting a review names the records it links", func(t *testing.T) {
				admin("POST", "/fhir/Task/"+task+"/$accept", "", 200, want{subtype: "$accept", action: "E", outcome: "0", anyPatients: true})
				e := n.latest(t, 1)[0]
				if !slices.Contains(e.Patients, id(moved)) || len(e.Patients) < 2 {
					t.Errorf("patients %v, want %s and the record it was matched with", e.Patients, id(moved))
				}
			})
			t.Run("a review decided twice is refused, still naming the records", func(t *testing.T) {
				admin("POST", "/fhir/Task/"+task+"/$reject", "", 409, want{subtype: "$reject", action: "E", outcome: "4", anyPatients: true})
				if e := n.latest(t, 1)[0]; !slices.Contains(e.Patients, id(moved)) {
					t.Errorf("patients %v, want %s", e.Patients, id(moved))
				}
			})
			t.Run("a merge names both records", func(t *testing.T) {
				admin("POST", "/fhir/Patient/$merge", mergeParams(hospital, alice), 200, want{subtype: "$merge", action: "E", outcome: "0",
					patients: []string{id(hospital), id(alice)}})
			})
			t.Run("an unmerge names both records", func(t *testing.T) {
				admin("POST", "/fhir/Patient/$unmerge", mergeParams(hospital, alice), 200, want{subtype: "$unmerge", action: "E", outcome: "0",
					patients: []string{id(hospital), id(alice)}})
			})
		})
	}
}

// failingEntries records through a real log every entry but those of a
// bundle's entries (their action is R here), which fail as a log whose
// store went down between two writes would.
type failingEntries struct{ *audit.Log }

func (f failingEntries) Record(ctx context.Context, e *audit.Entry) error {
	if e.Action == audit.ActionRead {
		return errors.New("store unavailable")
	}
	return f.Log.Record(ctx, e)
}

// RecordAll fails the whole write when it holds a bundle entry's entry,
// as the log's one write for them all would.
func (f failingEntries) RecordAll(ctx context.Context, es []*audit.Entry) error {
	for _, e := range es {
		if e.Action == audit.ActionRead {
			return errors.New("store unavailable")
		}
	}
	return f.Log.RecordAll(ctx, es)
}

// TestAuditBundleFailsClosed: a batch whose entries' own audit entries
// cannot be recorded discloses nothing of what they read, even though the
// interaction's own entry could be.
func TestAuditBundleFailsClosed(t *testing.T) {
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	l, err := audit.Open(ctx, st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	base, tok := auditedNode(t, st, l)
	id := createPatient(t, base, tok)
	failBase, failTok := auditedNode(t, st, failingEntries{l})
	code, body := call(t, http.MethodPost, failBase, failTok, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/`+id+`"}}]}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"OperationOutcome"`) || strings.Contains(body, "Secretname") {
		t.Fatalf("batch with a failing audit log: %d %s", code, body)
	}
}

// allAtOnce is the real log, its one write for several entries watched,
// or failing as a whole.
type allAtOnce struct {
	*audit.Log
	calls *[][]*audit.Entry
	fail  bool
}

func (a allAtOnce) RecordAll(ctx context.Context, es []*audit.Entry) error {
	*a.calls = append(*a.calls, es)
	if a.fail {
		return errors.New("store unavailable")
	}
	return a.Log.RecordAll(ctx, es)
}

// TestAuditBundleOneWrite: given a log that can write several entries at
// once, a batch's entries and its own go to it in one write, the
// interaction's own last; when that write fails, none is recorded and
// nothing is disclosed.
func TestAuditBundleOneWrite(t *testing.T) {
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	l, err := audit.Open(ctx, st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	base, tok := auditedNode(t, st, l)
	id := createPatient(t, base, tok)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/` + id + `"}},{"request":{"method":"GET","url":"Patient?_id=` + id + `"}}]}`

	var calls [][]*audit.Entry
	okBase, okTok := auditedNode(t, st, allAtOnce{Log: l, calls: &calls})
	if code, body := call(t, http.MethodPost, okBase, okTok, batch); code != http.StatusOK || !strings.Contains(body, "Secretname") {
		t.Fatalf("batch: %d %s", code, body)
	}
	if len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("%d writes (%v), want one of three entries", len(calls), calls)
	}
	for i, w := range []string{"read", "search-type", "batch"} {
		if got := decodeEvent(t, calls[0][i]).subtype(); got != w {
			t.Errorf("entry %d of the write: %q, want %q", i, got, w)
		}
	}

	before, _ := l.Search(ctx, audit.Query{Limit: 1000})
	calls = nil
	failBase, failTok := auditedNode(t, st, allAtOnce{Log: l, calls: &calls, fail: true})
	if code, body := call(t, http.MethodPost, failBase, failTok, batch); code != http.StatusServiceUnavailable || strings.Contains(body, "Secretname") {
		t.Fatalf("batch with a failing write: %d %s", code, body)
	}
	if after, _ := l.Search(ctx, audit.Query{Limit: 1000}); len(after) != len(before) {
		t.Errorf("%d entries recorded of a failed write", len(after)-len(before))
	}
}
