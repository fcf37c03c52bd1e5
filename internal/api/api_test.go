package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// testMaxBody is the body limit of the test servers: small, so the 413 and
// gzip-bomb rows need little memory.
const testMaxBody = 64 << 10

// node is one running server under test.
type node struct {
	url     string // http://127.0.0.1:port
	base    string // url + "/fhir"
	token   string
	st      store.Store
	auth    *auth.Authority
	handler http.Handler
}

// service is the engine plus its store's readiness, wired as serve wires it.
type service struct {
	*engine.Engine
	st store.Store
}

func (s service) Ping(ctx context.Context) error { return s.st.Ping(ctx) }

// loopbackConfig is a node's configuration for a test: listening on a
// free loopback port (the listener returned), its base URL on it and a
// data directory of its own.
func loopbackConfig(t testing.TB) (net.Listener, config.Config) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.BaseURL = "http://" + cfg.Addr + "/fhir"
	cfg.DataDir = t.TempDir()
	return ln, cfg
}

// startNode runs the real API over the real engine on st, on a loopback
// port, and returns it with an admin token.
func startNode(t testing.TB, st store.Store, mutate func(*config.Config)) *node {
	t.Helper()
	ln, cfg := loopbackConfig(t)
	cfg.MaxBodyBytes = testMaxBody
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := auth.Load(context.Background(), st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	// As in serve: the API applies the server's lenient default.
	eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
	h := api.New(service{eng, st}, a, cfg, nil)
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

// scenario is one request and what its response must and must not hold.
type scenario struct {
	Name               string
	Method             string
	Path               string // relative to the server root
	Body               string
	RawBody            []byte // used instead of Body when set
	Headers            map[string]string
	Token              string // "" = the admin token; "-" = none
	ExpectedStatus     int
	ExpectedHeaders    map[string]string // header -> substring it must contain ("" = must be absent)
	ExpectedContent    []string
	NotExpectedContent []string
}

func (n *node) do(t testing.TB, s scenario) (*http.Response, []byte) {
	t.Helper()
	body := s.RawBody
	if body == nil && s.Body != "" {
		body = []byte(s.Body)
	}
	req, err := http.NewRequest(s.Method, n.url+s.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch s.Token {
	case "":
		req.Header.Set("Authorization", "Bearer "+n.token)
	case "-":
	default:
		req.Header.Set("Authorization", s.Token)
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip: the tests look at the raw response
	if err != nil {
		t.Fatalf("%s %s: %v", s.Method, s.Path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, got
}

func (n *node) run(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) {
			resp, body := n.do(t, s)
			if resp.StatusCode != s.ExpectedStatus {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, s.ExpectedStatus, trim(body))
			}
			if resp.StatusCode >= 500 && s.ExpectedStatus < 500 {
				t.Errorf("a server error for bad input")
			}
			if resp.StatusCode >= 400 && s.Method != http.MethodHead {
				var o map[string]any
				if err := json.Unmarshal(body, &o); err != nil || o["resourceType"] != "OperationOutcome" {
					t.Errorf("error body is not an OperationOutcome: %s", trim(body))
				}
			}
			for h, want := range s.ExpectedHeaders {
				got := resp.Header.Get(h)
				if want == "" && got != "" {
					t.Errorf("header %s = %q, want none", h, got)
				}
				if want != "" && !strings.Contains(got, want) {
					t.Errorf("header %s = %q, want it to contain %q", h, got, want)
				}
			}
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip response: %v", err)
				}
				body, err = io.ReadAll(zr)
				if err != nil {
					t.Fatalf("gzip response: %v", err)
				}
			}
			for _, c := range s.ExpectedContent {
				if !bytes.Contains(body, []byte(c)) {
					t.Errorf("body lacks %q: %s", c, trim(body))
				}
			}
			for _, c := range s.NotExpectedContent {
				if bytes.Contains(body, []byte(c)) {
					t.Errorf("body holds %q, which must not appear: %s", c, trim(body))
				}
			}
		})
	}
}

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

const fhirJSON = "application/fhir+json"

var jsonCT = map[string]string{"Content-Type": fhirJSON}

func headers(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// seed writes the resources the scenarios read: Patient/p1 (version 1) and
// Patient/gone (deleted).
func seed(t *testing.T, n *node) {
	t.Helper()
	for _, s := range []scenario{
		{Method: "PUT", Path: "/fhir/Patient/p1", Headers: jsonCT, Body: `{"resourceType":"Patient","id":"p1","gender":"female","name":[{"family":"Jones","given":["Ann"]}],"identifier":[{"system":"urn:test","value":"p1"}]}`},
		{Method: "PUT", Path: "/fhir/Patient/gone", Headers: jsonCT, Body: `{"resourceType":"Patient","id":"gone"}`},
		{Method: "DELETE", Path: "/fhir/Patient/gone"},
	} {
		resp, body := n.do(t, s)
		if resp.StatusCode >= 300 {
			t.Fatalf("seed %s %s: %d %s", s.Method, s.Path, resp.StatusCode, body)
		}
	}
}

func deep(n int) string {
	return `{"resourceType":"Patient","extension":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
}

// forged tokens for the attack rows.
func attackTokens(t *testing.T, n *node) map[string]string {
	t.Helper()
	seed, err := n.st.Secret(context.Background(), auth.SigningKeyName, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	otherAud, _ := auth.New(key, "http://elsewhere.example/fhir")
	wrongAud, _ := otherAud.IssueAdmin(time.Hour)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := auth.New(otherKey, n.base)
	wrongKey, _ := stranger.IssueAdmin(time.Hour)
	past, _ := auth.New(key, n.base)
	past.SetClock(func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _ := past.IssueAdmin(time.Hour)
	parts := strings.Split(n.token, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	swapped := parts[0] + "." + parts[1] + "." + strings.Split(wrongKey, ".")[2]
	return map[string]string{"wrongAud": wrongAud, "wrongKey": wrongKey, "expired": expired, "none": none, "swapped": swapped}
}

func TestHTTP(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startNode(t, b.Open(t), nil)
			seed(t, n)
			tok := attackTokens(t, n)
			bomb := gzipped(make([]byte, 8*testMaxBody)) // 512 KiB of zeros in about 600 bytes
			big := `{"resourceType":"Patient","id":"big","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">` + strings.Repeat("x", testMaxBody) + `</div>"}}`
			n.run(t, []scenario{
				// No anonymous access (issue 2, point 8).
				{Name: "metadata needs no token", Method: "GET", Path: "/fhir/metadata", Token: "-", ExpectedStatus: 200,
					ExpectedContent: []string{`"resourceType":"CapabilityStatement"`}},
				{Name: "health needs no token", Method: "GET", Path: "/healthz", Token: "-", ExpectedStatus: 200},
				{Name: "readiness reports the store", Method: "GET", Path: "/readyz", Token: "-", ExpectedStatus: 200, ExpectedContent: []string{"ready"}},
				{Name: "missing token is 401 with a bare challenge", Method: "GET", Path: "/fhir/Patient/p1", Token: "-", ExpectedStatus: 401,
					ExpectedHeaders: headers("WWW-Authenticate", `Bearer realm="sharedcare"`), NotExpectedContent: []string{"Jones"}},
				{Name: "search without a token is 401", Method: "GET", Path: "/fhir/Patient", Token: "-", ExpectedStatus: 401},
				{Name: "unknown path without a token is 401, not 404", Method: "GET", Path: "/fhir/Nope/x/y", Token: "-", ExpectedStatus: 401},
				{Name: "an unsupported format without a token is 401, not 406", Method: "GET", Path: "/fhir/Patient/p1?_format=xml", Token: "-", ExpectedStatus: 401},
				{Name: "basic auth is refused", Method: "GET", Path: "/fhir/Patient/p1", Token: "Basic YWRtaW46YWRtaW4=", ExpectedStatus: 401,
					ExpectedHeaders: headers("WWW-Authenticate", `error="invalid_token"`)},
				{Name: "garbage token", Method: "GET", Path: "/fhir/Patient/p1", Token: "Bearer xyz", ExpectedStatus: 401,
					ExpectedHeaders: headers("WWW-Authenticate", `error="invalid_token"`)},
				{Name: "alg none token", Method: "GET", Path: "/fhir/Patient/p1", Token: "Bearer " + tok["none"], ExpectedStatus: 401, NotExpectedContent: []string{"Jones"}},
				{Name: "expired token", Method: "GET", Path: "/fhir/Patient/p1", Token: "Bearer " + tok["expired"], ExpectedStatus: 401, ExpectedContent: []string{"expired"}},
				{Name: "token for another audience", Method: "GET", Path: "/fhir/Patient/p1", Token: "Bearer " + tok["wrongAud"], ExpectedStatus: 401, ExpectedContent: []string{"another server"}},
				{Name: "token signed by another key", Method: "GET", Path: "/fhir/Patient/p1", Token: "Bearer " + tok["wrongKey"], ExpectedStatus: 401},
				{Name: "our claims under another key's signature", Method: "GET", Path: "/fhir/Patient/p1", Token: "Bearer " + tok["swapped"], ExpectedStatus: 401, ExpectedContent: []string{"signature"}},
				{Name: "bearer scheme is case-insensitive", Method: "GET", Path: "/fhir/Patient/p1", Token: "bearer " + n.token, ExpectedStatus: 200},

				// Routing.
				{Name: "unknown resource type is 404", Method: "GET", Path: "/fhir/Patent/p1", ExpectedStatus: 404, ExpectedContent: []string{"unknown resource type"}},
				{Name: "unknown resource type on create is 404", Method: "POST", Path: "/fhir/Patent", Headers: jsonCT, Body: `{"resourceType":"Patent"}`, ExpectedStatus: 404},
				{Name: "unknown path is 404", Method: "GET", Path: "/fhir/Patient/p1/_history/1/extra", ExpectedStatus: 404},
				{Name: "path outside the API is 404", Method: "GET", Path: "/nowhere", Token: "-", ExpectedStatus: 404},
				{Name: "wrong method on an instance is 405 with Allow", Method: "POST", Path: "/fhir/Patient/p1", Headers: jsonCT, Body: `{}`, ExpectedStatus: 405,
					ExpectedHeaders: headers("Allow", "PUT")},
				{Name: "wrong method on metadata is 405", Method: "DELETE", Path: "/fhir/metadata", ExpectedStatus: 405, ExpectedHeaders: headers("Allow", "GET")},
				{Name: "POST to metadata is 405", Method: "POST", Path: "/fhir/metadata", Headers: jsonCT, Body: `{}`, ExpectedStatus: 405},
				{Name: "wrong method on the health check is 405", Method: "POST", Path: "/healthz", Token: "-", ExpectedStatus: 405},

				// Reads, conditional reads and versions.
				{Name: "read returns the resource with ETag and Last-Modified", Method: "GET", Path: "/fhir/Patient/p1", ExpectedStatus: 200,
					ExpectedHeaders: headers("ETag", `W/"1"`, "Last-Modified", "GMT", "Content-Type", "application/fhir+json", "X-Request-Id", "-"),
					ExpectedContent: []string{`"id":"p1"`, `"versionId":"1"`}},
				{Name: "HEAD read has headers and no body", Method: "HEAD", Path: "/fhir/Patient/p1", ExpectedStatus: 200,
					ExpectedHeaders: headers("ETag", `W/"1"`), NotExpectedContent: []string{"p1"}},
				{Name: "If-None-Match with the current ETag is 304", Method: "GET", Path: "/fhir/Patient/p1", Headers: headers("If-None-Match", `W/"1"`), ExpectedStatus: 304,
					ExpectedHeaders: headers("ETag", `W/"1"`), NotExpectedContent: []string{"p1"}},
				{Name: "If-None-Match with an old ETag is 200", Method: "GET", Path: "/fhir/Patient/p1", Headers: headers("If-None-Match", `W/"0"`), ExpectedStatus: 200},
				{Name: "If-Modified-Since in the future is 304", Method: "GET", Path: "/fhir/Patient/p1",
					Headers: headers("If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)), ExpectedStatus: 304},
				{Name: "If-Modified-Since in the past is 200", Method: "GET", Path: "/fhir/Patient/p1",
					Headers: headers("If-Modified-Since", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)), ExpectedStatus: 200},
				{Name: "read of a deleted resource is 410", Method: "GET", Path: "/fhir/Patient/gone", ExpectedStatus: 410},
				{Name: "read of a missing resource is 404", Method: "GET", Path: "/fhir/Patient/never", ExpectedStatus: 404},
				{Name: "vread", Method: "GET", Path: "/fhir/Patient/p1/_history/1", ExpectedStatus: 200, ExpectedHeaders: headers("ETag", `W/"1"`)},
				{Name: "vread of a missing version is 404", Method: "GET", Path: "/fhir/Patient/p1/_history/9", ExpectedStatus: 404},
				{Name: "instance history", Method: "GET", Path: "/fhir/Patient/p1/_history", ExpectedStatus: 200, ExpectedContent: []string{`"type":"history"`}},
				{Name: "type history", Method: "GET", Path: "/fhir/Patient/_history", ExpectedStatus: 200, ExpectedContent: []string{`"type":"history"`}},
				{Name: "system history", Method: "GET", Path: "/fhir/_history", ExpectedStatus: 200, ExpectedContent: []string{`"type":"history"`}},

				// Formats.
				{Name: "_pretty indents", Method: "GET", Path: "/fhir/Patient/p1?_pretty=true", ExpectedStatus: 200, ExpectedContent: []string{"{\n  \"resourceType\": \"Patient\""}},
				{Name: "_format=json", Method: "GET", Path: "/fhir/Patient/p1?_format=json", ExpectedStatus: 200, ExpectedHeaders: headers("Content-Type", "application/fhir+json")},
				{Name: "_format=application/fhir+json with + unescaped", Method: "GET", Path: "/fhir/Patient/p1?_format=application/fhir+json", ExpectedStatus: 200},
				{Name: "_format=application/json answers application/json", Method: "GET", Path: "/fhir/Patient/p1?_format=application/json", ExpectedStatus: 200,
					ExpectedHeaders: headers("Content-Type", "application/json;")},
				{Name: "_format=xml is 406", Method: "GET", Path: "/fhir/Patient/p1?_format=xml", ExpectedStatus: 406, NotExpectedContent: []string{"Jones"}},
				{Name: "Accept of XML only is 406", Method: "GET", Path: "/fhir/Patient/p1", Headers: headers("Accept", "application/fhir+xml"), ExpectedStatus: 406},
				{Name: "Accept */* is fine", Method: "GET", Path: "/fhir/Patient/p1", Headers: headers("Accept", "text/html, */*;q=0.1"), ExpectedStatus: 200},
				{Name: "_elements keeps the named elements and tags SUBSETTED", Method: "GET", Path: "/fhir/Patient/p1?_elements=name", ExpectedStatus: 200,
					ExpectedContent: []string{"Jones", "SUBSETTED"}, NotExpectedContent: []string{"gender"}},
				{Name: "_summary=true keeps summary elements", Method: "GET", Path: "/fhir/Patient/p1?_summary=true", ExpectedStatus: 200,
					ExpectedContent: []string{"Jones", "SUBSETTED", "gender"}},
				{Name: "gzip when accepted", Method: "GET", Path: "/fhir/metadata", Token: "-", Headers: headers("Accept-Encoding", "gzip"), ExpectedStatus: 200,
					ExpectedHeaders: headers("Content-Encoding", "gzip"), ExpectedContent: []string{"CapabilityStatement"}},
				{Name: "no gzip when refused", Method: "GET", Path: "/fhir/metadata", Token: "-", Headers: headers("Accept-Encoding", "gzip;q=0"), ExpectedStatus: 200,
					ExpectedHeaders: headers("Content-Encoding", "")},

				// Bad input: never a 500, always an OperationOutcome (issue 2, point 7).
				{Name: "malformed JSON is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: `{"resourceType":"Patient",`, ExpectedStatus: 400},
				{Name: "invalid UTF-8 is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, RawBody: []byte("{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}"), ExpectedStatus: 400},
				{Name: "duplicate keys are 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: `{"resourceType":"Patient","gender":"male","gender":"female"}`, ExpectedStatus: 400,
					ExpectedContent: []string{"duplicate"}},
				{Name: "nesting too deep is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: deep(5000), ExpectedStatus: 400},
				{Name: "a body over the limit is 413", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: big, ExpectedStatus: 413},
				{Name: "a gzip bomb is 413", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Content-Encoding", "gzip"), RawBody: bomb, ExpectedStatus: 413},
				{Name: "a corrupt gzip body is 400", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Content-Encoding", "gzip"), Body: "not gzip at all", ExpectedStatus: 400},
				{Name: "an unknown Content-Encoding is 415", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Content-Encoding", "br"), Body: "{}", ExpectedStatus: 415},
				{Name: "text/plain is 415", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", "text/plain"), Body: `{"resourceType":"Patient"}`, ExpectedStatus: 415},
				{Name: "XML is 415", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", "application/fhir+xml"), Body: `<Patient/>`, ExpectedStatus: 415},
				{Name: "a missing Content-Type is 415", Method: "POST", Path: "/fhir/Patient", Body: `{"resourceType":"Patient"}`, ExpectedStatus: 415},
				{Name: "a non-UTF-8 charset is 415", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", "application/fhir+json; charset=iso-8859-1"), Body: `{"resourceType":"Patient"}`, ExpectedStatus: 415},
				{Name: "an empty body is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, ExpectedStatus: 400},
				{Name: "a JSON array is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: `[1,2]`, ExpectedStatus: 400},
				{Name: "resourceType not matching the URL is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: `{"resourceType":"Observation"}`, ExpectedStatus: 400},
				{Name: "JSON Patch with application/json is 415", Method: "PATCH", Path: "/fhir/Patient/p1", Headers: headers("Content-Type", "application/json"), Body: `[]`, ExpectedStatus: 415},
				{Name: "a malformed query string is 400", Method: "GET", Path: "/fhir/Patient?_id=%zz", ExpectedStatus: 400},
				{Name: "a bad _pretty is 400", Method: "GET", Path: "/fhir/Patient/p1?_pretty=yes", ExpectedStatus: 400},

				// Writes, Prefer and versions.
				{Name: "create is 201 with Location and the resource", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: `{"resourceType":"Patient","gender":"male"}`, ExpectedStatus: 201,
					ExpectedHeaders: headers("Location", n.base+"/Patient/", "ETag", `W/"1"`, "Last-Modified", "GMT"), ExpectedContent: []string{`"gender":"male"`, `"versionId":"1"`}},
				{Name: "a gzip-encoded create", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON+"; charset=utf-8", "Content-Encoding", "gzip"),
					RawBody: gzipped([]byte(`{"resourceType":"Patient","gender":"other"}`)), ExpectedStatus: 201, ExpectedContent: []string{`"gender":"other"`}},
				{Name: "application/json is accepted for bodies", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", "application/json"), Body: `{"resourceType":"Patient"}`, ExpectedStatus: 201},
				{Name: "Prefer return=minimal has no body", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Prefer", "return=minimal"), Body: `{"resourceType":"Patient","gender":"male"}`,
					ExpectedStatus: 201, ExpectedHeaders: headers("Location", "/_history/1", "Preference-Applied", "return=minimal"), NotExpectedContent: []string{"Patient"}},
				{Name: "Prefer return=OperationOutcome", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Prefer", "return=OperationOutcome"), Body: `{"resourceType":"Patient"}`,
					ExpectedStatus: 201, ExpectedContent: []string{`"resourceType":"OperationOutcome"`, "created Patient/"}},
				{Name: "Prefer return=representation", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Prefer", "return=representation"), Body: `{"resourceType":"Patient","gender":"unknown"}`,
					ExpectedStatus: 201, ExpectedContent: []string{`"gender":"unknown"`}},
				{Name: "update as create is 201 with Location", Method: "PUT", Path: "/fhir/Patient/new-1", Headers: jsonCT, Body: `{"resourceType":"Patient","id":"new-1"}`, ExpectedStatus: 201,
					ExpectedHeaders: headers("Location", n.base+"/Patient/new-1/_history/1")},
				{Name: "update is 200 with the next version", Method: "PUT", Path: "/fhir/Patient/new-1", Headers: headers("Content-Type", fhirJSON, "If-Match", `W/"1"`), Body: `{"resourceType":"Patient","id":"new-1","gender":"male"}`,
					ExpectedStatus: 200, ExpectedHeaders: headers("ETag", `W/"2"`, "Location", ""), ExpectedContent: []string{`"versionId":"2"`}},
				{Name: "If-Match on an old version is 412", Method: "PUT", Path: "/fhir/Patient/new-1", Headers: headers("Content-Type", fhirJSON, "If-Match", `W/"1"`), Body: `{"resourceType":"Patient","id":"new-1"}`,
					ExpectedStatus: 412},
				{Name: "JSON Patch", Method: "PATCH", Path: "/fhir/Patient/new-1", Headers: headers("Content-Type", "application/json-patch+json"), Body: `[{"op":"replace","path":"/gender","value":"female"}]`,
					ExpectedStatus: 200, ExpectedHeaders: headers("ETag", `W/"3"`), ExpectedContent: []string{`"gender":"female"`}},
				{Name: "conditional create that matches is 200 and creates nothing", Method: "POST", Path: "/fhir/Patient",
					Headers: headers("Content-Type", fhirJSON, "If-None-Exist", "identifier=urn:test|p1"), Body: `{"resourceType":"Patient"}`,
					ExpectedStatus: 200, ExpectedContent: []string{`"id":"p1"`}},
				{Name: "delete is 200 with an OperationOutcome", Method: "DELETE", Path: "/fhir/Patient/new-1", ExpectedStatus: 200, ExpectedContent: []string{"deleted Patient/new-1"}},
				{Name: "read after delete is 410", Method: "GET", Path: "/fhir/Patient/new-1", ExpectedStatus: 410},
				{Name: "delete with return=minimal is 204", Method: "DELETE", Path: "/fhir/Patient/new-1", Headers: headers("Prefer", "return=minimal"), ExpectedStatus: 204},

				// Search, bundles, operations.
				{Name: "search by _id", Method: "GET", Path: "/fhir/Patient?_id=p1", ExpectedStatus: 200, ExpectedContent: []string{`"type":"searchset"`, `"id":"p1"`}},
				{Name: "search by POST form", Method: "POST", Path: "/fhir/Patient/_search", Headers: headers("Content-Type", "application/x-www-form-urlencoded"), Body: "identifier=urn:test|p1",
					ExpectedStatus: 200, ExpectedContent: []string{`"id":"p1"`}},
				{Name: "search by POST needs a form", Method: "POST", Path: "/fhir/Patient/_search", Headers: jsonCT, Body: "{}", ExpectedStatus: 415},
				{Name: "system search", Method: "GET", Path: "/fhir?_id=p1", ExpectedStatus: 200, ExpectedContent: []string{`"type":"searchset"`}},
				{Name: "strict handling refuses unknown search parameters", Method: "GET", Path: "/fhir/Patient?nonsense=1", Headers: headers("Prefer", "handling=strict"), ExpectedStatus: 400},
				{Name: "transaction bundle", Method: "POST", Path: "/fhir", Headers: jsonCT,
					Body:           `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:0b2b1f0e-6f58-4b8e-9f6a-1d2c3b4a5e6f","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`,
					ExpectedStatus: 200, ExpectedContent: []string{`"type":"transaction-response"`, "201"}},
				{Name: "$validate", Method: "POST", Path: "/fhir/Patient/$validate", Headers: jsonCT, Body: `{"resourceType":"Patient"}`, ExpectedStatus: 200,
					ExpectedContent: []string{`"resourceType":"OperationOutcome"`}},
			})
		})
	}
}

// TestLenientWrites checks that Prefer: handling=lenient (and the server
// flag) accept unknown elements, drop them and report each as a warning.
func TestLenientWrites(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			strictNode := startNode(t, b.Open(t), nil)
			lenientNode := startNode(t, b.Open(t), func(c *config.Config) { c.Lenient = true })
			unknown := `{"resourceType":"Patient","gender":"male","favouriteColour":"blue"}`
			strictNode.run(t, []scenario{
				{Name: "strict by default: unknown element is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: unknown, ExpectedStatus: 400,
					ExpectedContent: []string{"favouriteColour"}},
				{Name: "Prefer handling=lenient drops it and warns in a header", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Prefer", "handling=lenient"), Body: unknown,
					ExpectedStatus: 201, ExpectedHeaders: headers("Warning", "299 sharedcare"), NotExpectedContent: []string{"favouriteColour"}},
				{Name: "with return=OperationOutcome the warning is an issue", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Prefer", "handling=lenient, return=OperationOutcome"), Body: unknown,
					ExpectedStatus: 201, ExpectedContent: []string{`"severity":"warning"`, "favouriteColour"}},
			})
			lenientNode.run(t, []scenario{
				{Name: "the server flag makes writes lenient", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: unknown, ExpectedStatus: 201,
					ExpectedHeaders: headers("Warning", "favouriteColour")},
				{Name: "a client's handling=strict wins over the server flag", Method: "POST", Path: "/fhir/Patient", Headers: headers("Content-Type", fhirJSON, "Prefer", "handling=strict"), Body: unknown,
					ExpectedStatus: 400},
			})
		})
	}
}

// TestRequestID checks that a sane X-Request-Id is echoed and an unsafe one
// replaced.
func TestRequestID(t *testing.T) {
	n := startNode(t, backend.OpenSQLiteForTest(t), nil)
	resp, _ := n.do(t, scenario{Method: "GET", Path: "/healthz", Headers: headers("X-Request-Id", "abc-123")})
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id = %q, want the caller's abc-123", got)
	}
	resp, _ = n.do(t, scenario{Method: "GET", Path: "/healthz", Headers: headers("X-Request-Id", "evil\"id with spaces")})
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, "\" ") {
		t.Errorf("X-Request-Id = %q, want a generated safe id", got)
	}
}

// TestMaxDepthSetting checks that --max-depth bounds nesting at the edge,
// and that brackets inside strings do not count.
func TestMaxDepthSetting(t *testing.T) {
	n := startNode(t, backend.OpenSQLiteForTest(t), func(c *config.Config) { c.MaxDepth = 20 })
	n.run(t, []scenario{
		{Name: "nesting over the configured depth is 400", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT, Body: deep(25), ExpectedStatus: 400,
			ExpectedContent: []string{"deeper than 20"}},
		{Name: "brackets inside strings are not nesting", Method: "POST", Path: "/fhir/Patient", Headers: jsonCT,
			Body: `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat(`[{\"`, 30) + `"}]}`, ExpectedStatus: 201},
	})
}
