package api_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// faulty is the real engine, except that reading Patient/panic panics and
// reading Patient/boom fails with an error that is not a *fhir.Error: the
// two ways a bug shows itself to the HTTP layer.
type faulty struct{ service }

func (f faulty) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	switch id {
	case "panic":
		panic("bug in a lower layer")
	case "boom":
		return nil, errors.New("disk on fire at /var/secret/path")
	}
	return f.service.Read(ctx, typ, id)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	st := backend.OpenSQLiteForTest(t)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String() + "/fhir"
	cfg := config.Default()
	cfg.BaseURL = base
	a, err := auth.Load(context.Background(), st, base)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv.Config.Handler = api.New(faulty{service{engine.New(st, engine.Config{BaseURL: base}), st}}, a, cfg, log)
	srv.Start()
	defer srv.Close()
	tok, _ := a.IssueAdmin(time.Hour)
	n := &node{url: srv.URL, base: base, token: tok, st: st}

	n.run(t, []scenario{
		{Name: "a panic is a 500 OperationOutcome", Method: "GET", Path: "/fhir/Patient/panic", Headers: headers("X-Request-Id", "req-panic"), ExpectedStatus: 500,
			ExpectedContent: []string{"internal error"}, NotExpectedContent: []string{"bug in a lower layer"}},
		{Name: "an unexpected error is a 500 that says only internal error", Method: "GET", Path: "/fhir/Patient/boom?identifier=9434765919", Headers: headers("X-Request-Id", "req-boom"),
			ExpectedStatus: 500, ExpectedContent: []string{"internal error"}, NotExpectedContent: []string{"disk on fire", "/var/secret"}},
		{Name: "the server still works afterwards", Method: "GET", Path: "/fhir/metadata", ExpectedStatus: 200},
	})

	out := logs.String()
	for _, want := range []string{`"request_id":"req-panic"`, "bug in a lower layer", `"request_id":"req-boom"`, "disk on fire"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{tok, "9434765919", "Bearer"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q, which must never be logged:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"principal":"admin:admin"`) {
		t.Errorf("access log lacks the principal:\n%s", out)
	}
}
