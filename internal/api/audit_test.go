package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// failingRecorder refuses every entry, as a log whose store is down does.
type failingRecorder struct{}

func (failingRecorder) Record(context.Context, *audit.Entry) error {
	return errors.New("store unavailable")
}

func heldRead(t *testing.T) *heldResponse {
	t.Helper()
	h := newHeldResponse()
	h.Header().Set("ETag", `W/"1"`)
	h.WriteHeader(http.StatusOK)
	h.Write([]byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Secretname"}]}`))
	return h
}

func readInteraction() auditFacts {
	return auditFacts{
		Subtype: "read", Action: audit.ActionRead, Status: http.StatusOK, Time: time.Now(),
		User: "dr-a", Role: "clinician", Org: "A81001", Client: "portal", Node: "node-1",
		Purpose: "TREAT", Patients: []string{"p1"}, Resources: []string{"Patient/p1"},
	}
}

// TestAuditFailsClosed: when the entry cannot be recorded the client gets a
// 503 OperationOutcome and none of the held clinical data or headers.
func TestAuditFailsClosed(t *testing.T) {
	e, err := readInteraction().entry()
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := heldRead(t).release(context.Background(), failingRecorder{}, e, w); err == nil {
		t.Fatal("release succeeded over a failing recorder")
	}
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	body := w.Body.String()
	if !strings.Contains(body, `"OperationOutcome"`) || strings.Contains(body, "Secretname") || w.Header().Get("ETag") != "" {
		t.Fatalf("fail-closed response leaked or is no OperationOutcome: %s %v", body, w.Header())
	}
}

// TestAuditReleasesOnceDurable: over the real audit.Log on every store the
// held response is sent after its entry is recorded, and the entry is found
// by the person's own search with its AuditEvent.
func TestAuditReleasesOnceDurable(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			l, err := audit.Open(ctx, b.Open(t), t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(ctx)
			e, err := readInteraction().entry()
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			if err := heldRead(t).release(ctx, l, e, w); err != nil {
				t.Fatal(err)
			}
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Secretname") || w.Header().Get("ETag") != `W/"1"` {
				t.Fatalf("held response not released intact: %d %s", w.Code, w.Body)
			}
			got, err := l.Search(ctx, audit.Query{Patient: "p1", Unrestricted: true})
			if err != nil || len(got) != 1 {
				t.Fatalf("Search: %v, %d entries", err, len(got))
			}
			var ev struct {
				ResourceType string `json:"resourceType"`
				Action       string `json:"action"`
				Outcome      string `json:"outcome"`
				Entity       []struct {
					What struct{ Reference string } `json:"what"`
				} `json:"entity"`
			}
			if err := json.Unmarshal(got[0].Event, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.ResourceType != "AuditEvent" || ev.Action != "R" || ev.Outcome != "0" || len(ev.Entity) == 0 || ev.Entity[0].What.Reference != "Patient/p1" {
				t.Fatalf("AuditEvent %+v", ev)
			}
		})
	}
}

// TestAuditOutcomes: denied and withheld interactions are entries too, minor
// failures; server errors serious.
func TestAuditOutcomes(t *testing.T) {
	for status, want := range map[int]string{200: "0", 201: "0", 401: "4", 403: "4", 404: "4", 500: "8", 503: "8"} {
		in := readInteraction()
		in.Status = status
		e, err := in.entry()
		if err != nil || e.Outcome != want || !strings.Contains(string(e.Event), `"outcome":"`+want+`"`) {
			t.Errorf("status %d: outcome %q, want %q (%v)", status, e.Outcome, want, err)
		}
	}
}

// TestAuditEventCarriesNoSecret: a search made with its token (or any
// other credential) in the query records the query without it.
func TestAuditEventCarriesNoSecret(t *testing.T) {
	q := url.Values{"patient": {"p1"}, "access_token": {"tok-SECRET1"}, "client_secret": {"SECRET2"}, "password": {"SECRET3"}, "code": {"SECRET4"}}
	in := readInteraction()
	in.Subtype, in.Action, in.Query = "search", audit.ActionExecute, auditQuery("Observation", q)
	e, err := in.entry()
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Entity []struct {
			Query []byte `json:"query"`
		} `json:"entity"`
	}
	if err := json.Unmarshal(e.Event, &ev); err != nil {
		t.Fatal(err)
	}
	last := ev.Entity[len(ev.Entity)-1].Query
	if string(last) != "Observation?patient=p1" {
		t.Fatalf("recorded query %q", last)
	}
	if strings.Contains(string(e.Event), "SECRET") {
		t.Fatalf("event carries a secret: %s", e.Event)
	}
}
