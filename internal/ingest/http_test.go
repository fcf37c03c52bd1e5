package ingest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// flaky is the one fake server in these tests, and deliberately so: it checks
// the HTTP client's retry logic (statuses, Retry-After, giving up), which a
// real sharedcare server cannot be made to exercise on demand. Everything
// else runs against the real API server (see e2e_test.go).
type flaky struct {
	mu       sync.Mutex
	answers  []answer // one per request, the last repeated
	requests []*http.Request
	bodies   []string
}

type answer struct {
	status     int
	retryAfter string
	body       string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, r)
	f.bodies = append(f.bodies, string(body))
	a := f.answers[min(n, len(f.answers)-1)]
	f.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

const busy = `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}`

// newFlaky starts the fake server on loopback and a sink whose sleeps are
// recorded instead of waited.
func newFlaky(t *testing.T, answers ...answer) (*flaky, *HTTP, *[]time.Duration) {
	t.Helper()
	f := &flaky{answers: answers}
	srv := httptest.NewServer(f) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	var slept []time.Duration
	h, err := NewHTTP(srv.URL+"/fhir", HTTPOptions{
		Token: "tok", Lenient: true, Retries: 3,
		Sleep: func(ctx context.Context, d time.Duration) error { slept = append(slept, d); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, h, &slept
}

func TestHTTPRetriesOn503ThenSucceeds(t *testing.T) {
	f, h, slept := newFlaky(t,
		answer{status: 503, body: busy},
		answer{status: 503, retryAfter: "2", body: busy},
		answer{status: 200, body: `{"resourceType":"Bundle","type":"transaction-response"}`},
	)
	if _, err := h.Bundle(context.Background(), []byte(transaction), false); err != nil {
		t.Fatalf("got %v, want success on the third attempt", err)
	}
	if f.count() != 3 {
		t.Errorf("got %d requests, want 3", f.count())
	}
	if len(*slept) != 2 || (*slept)[1] != 2*time.Second {
		t.Errorf("waits: got %v, want a backoff then Retry-After's 2s", *slept)
	}
	if d := (*slept)[0]; d < 125*time.Millisecond || d > 250*time.Millisecond {
		t.Errorf("first backoff: got %v, want 125-250ms", d)
	}
	for i, r := range f.requests {
		if f.bodies[i] != transaction {
			t.Errorf("attempt %d: body changed", i)
		}
		checks := map[string]string{
			"Authorization": "Bearer tok",
			"Content-Type":  "application/fhir+json",
			"Prefer":        "return=minimal, handling=lenient",
		}
		for k, want := range checks {
			if got := r.Header.Get(k); got != want {
				t.Errorf("attempt %d: %s: got %q, want %q", i, k, got, want)
			}
		}
		if r.Method != http.MethodPost || r.URL.Path != "/fhir" {
			t.Errorf("attempt %d: got %s %s, want POST /fhir", i, r.Method, r.URL.Path)
		}
	}
}

func TestHTTPRetriesAreBounded(t *testing.T) {
	f, h, _ := newFlaky(t, answer{status: 429, body: busy})
	_, err := h.Bundle(context.Background(), []byte(transaction), false)
	if !fhir.IsKind(err, fhir.ETooManyRequests) {
		t.Fatalf("got %v, want the 429 after the retries", err)
	}
	if f.count() != 4 {
		t.Errorf("got %d requests, want 1 + 3 retries", f.count())
	}
	if got := reason(err); got != "HTTP 429: busy" {
		t.Errorf("reason: got %q, want %q", got, "HTTP 429: busy")
	}
}

func TestHTTPDoesNotRetryARefusal(t *testing.T) {
	f, h, _ := newFlaky(t, answer{status: 400, body: `{"resourceType":"OperationOutcome","issue":[
	  {"severity":"error","code":"structure","diagnostics":"unknown element","expression":["Bundle.entry[1].resource.context"]},
	  {"severity":"warning","code":"informational","diagnostics":"a warning"}]}`})
	_, err := h.Bundle(context.Background(), []byte(transaction), false)
	if !fhir.IsKind(err, fhir.EInvalid) || f.count() != 1 {
		t.Fatalf("got %v after %d requests, want one 400", err, f.count())
	}
	want := "HTTP 400: unknown element (at Bundle.entry[1].resource.context); a warning"
	if got := reason(err); got != want {
		t.Errorf("reason: got %q, want %q", got, want)
	}
}

func TestHTTPGivesUpOnAnUnreachableServerAsFatal(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	h, err := NewHTTP(base, HTTPOptions{Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Bundle(context.Background(), []byte(transaction), false)
	if err == nil || !fatal(context.Background(), err) {
		t.Errorf("got %v, want a fatal unreachable error", err)
	}
}

func TestRunResendsARefusedGroupAsABatchToIsolateTheBadEntry(t *testing.T) {
	batchResponse := `{"resourceType":"Bundle","type":"batch-response","entry":[
	  {"response":{"status":"200 OK"}},
	  {"response":{"status":"400 Bad Request","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"value","diagnostics":"entry 1: bad date","expression":["Bundle.entry[1].resource.birthDate"]}]}}},
	  {"response":{"status":"201 Created"}}]}`
	f, h, _ := newFlaky(t,
		answer{status: 400, body: busy},
		answer{status: 200, body: batchResponse},
	)
	path := write(t, t.TempDir(), "p.ndjson", `{"resourceType":"Patient","id":"a"}
{"resourceType":"Patient","id":"b","birthDate":"x"}
{"resourceType":"Patient","id":"c"}`)
	sum, err := Run(context.Background(), h, []string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Loaded != 2 || sum.Failed != 1 {
		t.Errorf("got loaded %d failed %d, want 2 and 1", sum.Loaded, sum.Failed)
	}
	want := []Failure{{File: path, Entry: "line 2", Resources: 1, Reason: "400 Bad Request: bad date (at Patient.birthDate)"}}
	if !slices.Equal(sum.Failures, want) {
		t.Errorf("failures: got %v, want %v", sum.Failures, want)
	}
	if f.count() != 2 || !strings.Contains(f.bodies[1], `"type":"batch"`) {
		t.Errorf("got %d requests, want the transaction then the same entries as a batch", f.count())
	}
}

func TestRunStopsWhenTheTokenIsRefused(t *testing.T) {
	f, h, _ := newFlaky(t, answer{status: 401, body: `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"token expired"}]}`})
	dir := t.TempDir()
	for _, name := range []string{"a.json", "b.json", "c.json", "d.json", "e.json", "f.json", "g.json", "h.json", "i.json", "j.json"} {
		write(t, dir, name, transaction)
	}
	_, err := Run(context.Background(), h, []string{dir}, Options{Workers: 1})
	if !fhir.IsKind(err, fhir.EUnauthorized) {
		t.Fatalf("got %v, want the 401 to stop the run", err)
	}
	if f.count() > 2 {
		t.Errorf("got %d requests, want the run to stop after the first refusal", f.count())
	}
}
