package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// failingRecorder refuses every entry, as a log whose store is down does.
type failingRecorder struct{}

func (failingRecorder) Record(context.Context, *audit.Entry) error {
	return errors.New("store unavailable")
}

func (failingRecorder) RecordAll(context.Context, []*audit.Entry) error {
	return errors.New("store unavailable")
}

// auditedNode serves st through api.Audited with rec on a loopback port and
// returns its base URL and an admin token.
func auditedNode(t *testing.T, st store.Store, rec audit.Recorder) (string, string) {
	t.Helper()
	base, tok, _ := auditedNodeAuth(t, st, rec)
	return base, tok
}

// auditedNodeAuth is auditedNode that also returns the node's token issuer.
func auditedNodeAuth(t *testing.T, st store.Store, rec audit.Recorder) (string, string, *auth.Authority) {
	t.Helper()
	cfg := config.Default()
	srv := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + srv.Listener.Addr().String() + "/fhir"
	cfg.DataDir = t.TempDir()
	a, err := auth.Load(context.Background(), st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
	srv.Config.Handler = api.Audited(api.New(service{eng, st}, a, cfg, nil), rec, "test-node")
	srv.Start()
	t.Cleanup(srv.Close)
	tok, err := a.IssueAdmin(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/fhir", tok, a
}

func call(t *testing.T, method, url, tok, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// createPatient stores a Patient directly and returns its id.
func createPatient(t *testing.T, base, tok string) string {
	t.Helper()
	code, body := call(t, http.MethodPost, base+"/Patient", tok, `{"resourceType":"Patient","name":[{"family":"Secretname"}]}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var p struct{ ID string }
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.ID == "" {
		t.Fatalf("create: %v %s", err, body)
	}
	return p.ID
}

// TestAuditFailsClosed: when the entry cannot be recorded the client gets a
// 503 OperationOutcome and none of the clinical data.
func TestAuditFailsClosed(t *testing.T) {
	st := backend.ForTests(t)[0].Open(t)
	l, err := audit.Open(context.Background(), st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	base, tok := auditedNode(t, st, l)
	id := createPatient(t, base, tok)
	// The same store, served by a node whose audit log fails.
	failBase, _ := auditedNode(t, st, failingRecorder{})
	code, body := call(t, http.MethodGet, failBase+"/Patient/"+id, tok, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"OperationOutcome"`) || strings.Contains(body, "Secretname") {
		t.Fatalf("failing audit: %d %s", code, body)
	}
}

// TestAuditRecordsEveryInteraction: over the real audit.Log on every store,
// a read, a denied (401) request and a search each become an entry before
// the response is sent, found by the person's own query, and no entry
// carries the caller's token or a credential given in the query.
func TestAuditRecordsEveryInteraction(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			l, err := audit.Open(ctx, st, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(ctx)
			base, tok := auditedNode(t, st, l)
			id := createPatient(t, base, tok)
			if code, body := call(t, http.MethodGet, base+"/Patient/"+id, tok, ""); code != http.StatusOK || !strings.Contains(body, "Secretname") {
				t.Fatalf("read: %d %s", code, body)
			}
			if code, _ := call(t, http.MethodGet, base+"/Patient/"+id, "", ""); code != http.StatusUnauthorized {
				t.Fatalf("read without token: %d", code)
			}
			call(t, http.MethodGet, base+"/Observation?patient=Patient/"+id+"&access_token=SECRETQ", tok, "")

			got, err := l.Search(ctx, audit.Query{Patient: id})
			if err != nil {
				t.Fatal(err)
			}
			// Newest first: the search, the refused read, the read, the create.
			if len(got) != 4 {
				t.Fatalf("%d entries for the patient, want 4", len(got))
			}
			// A search is an execute (E), as IHE BALP records it.
			want := []struct{ action, outcome string }{{"E", "0"}, {"R", "4"}, {"R", "0"}, {"C", "0"}}
			for i, w := range want {
				if got[i].Action != w.action || got[i].Outcome != w.outcome {
					t.Errorf("entry %d: action %s outcome %s, want %s %s", i, got[i].Action, got[i].Outcome, w.action, w.outcome)
				}
				var ev struct {
					ResourceType string `json:"resourceType"`
					Outcome      string `json:"outcome"`
				}
				if err := json.Unmarshal(got[i].Event, &ev); err != nil || ev.ResourceType != "AuditEvent" || ev.Outcome != w.outcome {
					t.Errorf("entry %d: event %s (%v)", i, got[i].Event, err)
				}
				if bytes.Contains(got[i].Event, []byte(tok)) || bytes.Contains(got[i].Event, []byte("SECRETQ")) {
					t.Fatalf("entry %d carries a credential: %s", i, got[i].Event)
				}
			}
			if got[2].User != "admin" {
				t.Errorf("read entry user %q, want admin", got[2].User)
			}
		})
	}
}

// TestAuditEventReadOnly: AuditEvent cannot be created, updated or deleted
// over the API; the refusal is a 405 OperationOutcome, and is audited.
func TestAuditEventReadOnly(t *testing.T) {
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	l, err := audit.Open(ctx, st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	base, tok := auditedNode(t, st, l)
	ev := `{"resourceType":"AuditEvent","id":"x","action":"R"}`
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/AuditEvent", ev}, {http.MethodPut, "/AuditEvent/x", ev}, {http.MethodDelete, "/AuditEvent/x", ""},
	} {
		code, body := call(t, c.method, base+c.path, tok, c.body)
		if code != http.StatusMethodNotAllowed || !strings.Contains(body, `"OperationOutcome"`) {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	got, err := l.Search(ctx, audit.Query{User: "admin"})
	if err != nil || len(got) != 3 || got[0].Outcome != audit.OutcomeMinor {
		t.Fatalf("refusals not audited: %v, %d entries", err, len(got))
	}
}

// TestAuditSearch: the operator searches the log by patient and sees flags
// as tags; a malformed date is a 400, never a 500.
func TestAuditSearch(t *testing.T) {
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	l, err := audit.Open(ctx, st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	base, tok := auditedNode(t, st, l)
	e := &audit.Entry{Time: time.Now(), User: "dr-x", Org: "A81001", Patients: []string{"pz"}, Action: "R", Outcome: "0",
		Flags: []string{audit.FlagBreakGlass}, Event: []byte(`{"resourceType":"AuditEvent","action":"R"}`)}
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	code, body := call(t, http.MethodGet, base+"/AuditEvent?patient=Patient/pz", tok, "")
	if code != http.StatusOK || !strings.Contains(body, `"total":1`) || !strings.Contains(body, audit.FlagBreakGlass) {
		t.Fatalf("search: %d %s", code, body)
	}
	for _, d := range []string{"x", "ge", "gexx", "ne2026-01-01T00:00:00Z"} {
		if code, body := call(t, http.MethodGet, base+"/AuditEvent?date="+d, tok, ""); code != http.StatusBadRequest {
			t.Errorf("date=%s: %d %s", d, code, body)
		}
	}
	code, body = call(t, http.MethodGet, base+"/AuditEvent?agent=dr-x&date=ge2000-01-01T00:00:00Z", tok, "")
	if code != http.StatusOK || !strings.Contains(body, `"total":1`) {
		t.Fatalf("search by agent and date: %d %s", code, body)
	}
}

// TestAuditPersonView: a person sees the accesses to their own record,
// restricted ones left out, and cannot ask for anyone else's; a clinician
// is refused.
func TestAuditPersonView(t *testing.T) {
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	l, err := audit.Open(ctx, st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	base, _, a := auditedNodeAuth(t, st, l)
	for _, restricted := range []bool{false, true} {
		e := &audit.Entry{Time: time.Now(), User: "dr-x", Org: "A81001", Patients: []string{"pz"}, Action: "R", Outcome: "0",
			Restricted: restricted, Event: []byte(`{"resourceType":"AuditEvent","action":"R"}`)}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	pat, err := a.Issue(auth.Principal{Subject: "Patient/pz", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, http.MethodGet, base+"/AuditEvent", pat, ""); code != http.StatusOK || !strings.Contains(body, `"total":1`) {
		t.Fatalf("own view: %d %s", code, body)
	}
	if code, body := call(t, http.MethodGet, base+"/AuditEvent?patient=Patient/other", pat, ""); code != http.StatusForbidden {
		t.Fatalf("another's view: %d %s", code, body)
	}
	doc, err := a.Issue(auth.Principal{Subject: "dr-x", User: "dr-x", Kind: auth.KindUser, Role: "gp-clinician", Organisation: "A81001", Scopes: []string{"user/*.rs"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, http.MethodGet, base+"/AuditEvent?patient=Patient/pz", doc, ""); code != http.StatusForbidden {
		t.Fatalf("clinician: %d %s", code, body)
	}
}

// BenchmarkAuditCost: read-by-id throughput of the same store through a
// handler without audit and one recording every read in the real
// audit.Log, interleaved so that both halves see the same machine.
func BenchmarkAuditCost(b *testing.B) {
	for _, be := range backend.ForTests(b) {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			st := be.Open(b)
			cfg := config.Default()
			cfg.BaseURL = "http://127.0.0.1/fhir"
			cfg.DataDir = b.TempDir()
			a, err := auth.Load(ctx, st, cfg.BaseURL)
			if err != nil {
				b.Fatal(err)
			}
			l, err := audit.Open(ctx, st, cfg.DataDir, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(ctx)
			eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
			plain := api.New(service{eng, st}, a, cfg, nil)
			audited := api.Audited(api.New(service{eng, st}, a, cfg, nil), l, "bench")
			tok, err := a.IssueAdmin(time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			const people = 200
			ids := make([]string, people)
			for i := range ids {
				req := httptest.NewRequest(http.MethodPost, "/fhir/Patient", strings.NewReader(`{"resourceType":"Patient","name":[{"family":"Bench"}]}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/fhir+json")
				w := httptest.NewRecorder()
				plain.ServeHTTP(w, req)
				var p struct{ ID string }
				if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &p) != nil {
					b.Fatalf("seed: %d %s", w.Code, w.Body)
				}
				ids[i] = p.ID
			}
			run := func(h http.Handler) func(b *testing.B) {
				return func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; b.Loop(); i++ {
						req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/"+ids[i%people], nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						w := httptest.NewRecorder()
						h.ServeHTTP(w, req)
						if w.Code != http.StatusOK {
							b.Fatalf("read: %d %s", w.Code, w.Body)
						}
					}
				}
			}
			// Concurrent readers, as a node serves them: the log's group
			// commit makes one durable transaction of their entries.
			par := func(h http.Handler) func(b *testing.B) {
				return func(b *testing.B) {
					b.ReportAllocs()
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						for i := 0; pb.Next(); i++ {
							req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/"+ids[i%people], nil)
							req.Header.Set("Authorization", "Bearer "+tok)
							w := httptest.NewRecorder()
							h.ServeHTTP(w, req)
							if w.Code != http.StatusOK {
								b.Errorf("read: %d %s", w.Code, w.Body)
								return
							}
						}
					})
				}
			}
			for range 2 {
				b.Run("read/without", run(plain))
				b.Run("read/with", run(audited))
				b.Run("parallel-read/without", par(plain))
				b.Run("parallel-read/with", par(audited))
			}
		})
	}
}
