package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/demo"
)

// syncBuffer collects the demo's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var tokenLine = regexp.MustCompile(`export TOKEN=(\S+)`)

// runDemoOnce starts the demo on dir, waits for its instructions, finds the
// sample patient by NHS number with the printed token, and stops the demo.
// It returns how many patients the search found.
func runDemoOnce(t *testing.T, dir string) int {
	t.Helper()
	out := &syncBuffer{}
	demoOut = out
	defer func() { demoOut = nil }()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, []string{"--data", dir, "--addr", addr, "--log-level", "warn"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo returned %v after Ctrl-C; want nil", err)
		}
	}()

	var token string
	for deadline := time.Now().Add(30 * time.Second); token == "" && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if m := tokenLine.FindStringSubmatch(out.String()); m != nil {
			token = m[1]
		}
	}
	if token == "" {
		t.Fatal("the demo printed no token")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+demo.NHSNumber, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("search with the printed token: status %d, want 200: %s", resp.StatusCode, body)
	}
	var bundle struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil {
		t.Fatal(err)
	}
	for _, e := range bundle.Entry {
		if e.Resource.ID != demo.PatientID {
			t.Errorf("found patient %q; want only %q", e.Resource.ID, demo.PatientID)
		}
	}
	return len(bundle.Entry)
}

// The demo's promise: one command gives a working node with the sample
// record and a token that works, and restarting it on the same folder does
// not duplicate the record.
func TestDemoServesTheSampleRecordAndRestartsCleanly(t *testing.T) {
	dir := t.TempDir()
	if got := runDemoOnce(t, dir); got != 1 {
		t.Fatalf("first run: %d patients with the sample NHS number, want 1", got)
	}
	if got := runDemoOnce(t, dir); got != 1 {
		t.Fatalf("after a restart: %d patients with the sample NHS number, want 1", got)
	}
}
