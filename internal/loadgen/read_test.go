package loadgen

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// server starts the real API over the real engine and an SQLite store on
// 127.0.0.1, with n patients, and returns its FHIR base and an admin token.
func server(t *testing.T, n int) (base, token string) {
	t.Helper()
	st := backend.OpenSQLiteForTest(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	base = srv.URL + "/fhir"
	eng := engine.New(st, engine.Config{BaseURL: base})
	for i := range n {
		body := fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","gender":"female","birthDate":"1970-01-01"}`, i)
		if _, err := eng.Update(t.Context(), "Patient", fmt.Sprintf("p%d", i), []byte(body), engine.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	authority, err := auth.Load(t.Context(), st, base)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.BaseURL = base
	h = api.New(eng, authority, cfg, nil)
	if token, err = authority.IssueAdmin(time.Hour); err != nil {
		t.Fatal(err)
	}
	return base, token
}

func TestReadAgainstTheRealServer(t *testing.T) {
	base, token := server(t, 20)
	c := NewClient(4, false)
	ids, err := ListIDs(t.Context(), c, base+"/", token, "Patient", 15)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 15 {
		t.Fatalf("listed %d ids, want 15 (max)", len(ids))
	}
	for _, tc := range []struct {
		name      string
		std, gzip bool
	}{
		{"lean client", false, false},
		{"lean client, gzip responses", false, true},
		{"net/http client", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r, err := Read(t.Context(), c, Config{BaseURL: base, Token: token, Type: "Patient", IDs: ids,
				Clients: 4, Duration: 300 * time.Millisecond, StdClient: tc.std, Gzip: tc.gzip})
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("a 300ms run took %v: it must stop by itself", el)
			}
			if r.Requests < 10 || r.Errors != 0 || r.Status[200] != r.Requests {
				t.Errorf("got %d requests, %d errors, statuses %v, want many 200s and no error", r.Requests, r.Errors, r.Status)
			}
			if p := r.Percentile(50); p <= 0 || p > r.Max() {
				t.Errorf("p50 %v, max %v: want 0 < p50 <= max", p, r.Max())
			}
			// The window kept a client and a server busy: on Linux the
			// machine's CPU over it is known, some of it busy, and its
			// shares add up to the whole.
			if runtime.GOOS == "linux" {
				m := r.Machine
				if !r.MachineKnown || m.Busy <= 0 || m.Steal < 0 || m.Busy+m.Idle+m.Steal < 0.999 || m.Busy+m.Idle+m.Steal > 1.001 {
					t.Errorf("machine CPU over the window %+v (known %v): want busy above 0 and shares summing to 1", m, r.MachineKnown)
				}
				var out strings.Builder
				r.Print(&out)
				if !strings.Contains(out.String(), "stolen by the host") {
					t.Errorf("the report lacks the machine's CPU:\n%s", out.String())
				}
			}
		})
	}
}

func TestReadCountsErrorStatuses(t *testing.T) {
	base, token := server(t, 1)
	for _, tc := range []struct {
		name, token string
		ids         []string
		status      int
	}{
		{"a missing resource is a 404 error", token, []string{"nobody"}, 404},
		{"a bad token is a 401 error", "bad", []string{"p0"}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Read(t.Context(), NewClient(1, false), Config{BaseURL: base, Token: tc.token, Type: "Patient", IDs: tc.ids, Clients: 2, Duration: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests == 0 || r.Errors != r.Requests || r.Status[tc.status] != r.Requests {
				t.Errorf("got %d requests, %d errors, statuses %v, want every one a %d", r.Requests, r.Errors, r.Status, tc.status)
			}
		})
	}
}

func TestReadAtAFixedRateSendsOnSchedule(t *testing.T) {
	base, token := server(t, 5)
	ids := []string{"p0", "p1", "p2", "p3", "p4"}
	r, err := Read(t.Context(), NewClient(4, false), Config{BaseURL: base, Token: token, Type: "Patient", IDs: ids,
		Clients: 4, Duration: time.Second, Warmup: 200 * time.Millisecond, Rate: 400})
	if err != nil {
		t.Fatal(err)
	}
	// 400/s for one second; a loaded test machine may fall a little behind.
	if r.Requests < 300 || r.Requests > 404 || r.Errors != 0 {
		t.Errorf("got %d requests (%d errors) in 1s at a fixed 400/s, want about 400 and none failed", r.Requests, r.Errors)
	}
}
