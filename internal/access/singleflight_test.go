package access_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// countingStore counts the searches the decider runs on a real store.
type countingStore struct {
	store.Store
	searches atomic.Int64
}

func (c *countingStore) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	c.searches.Add(1)
	return c.Store.Search(ctx, q)
}

// TestDeciderCompilesOncePerCaller: callers that find no filter at the
// same moment (a busy client's requests right after the facts were
// refreshed) share one load of the facts and one compile of the filter,
// instead of each running the same searches: 64 concurrent decisions cost
// the searches of one.
func TestDeciderCompilesOncePerCaller(t *testing.T) {
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range backend.ForTests(t) {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			st := be.Open(t)
			accesstest.Load(t, engine.New(st, engine.Config{BaseURL: "http://127.0.0.1/fhir"}), time.Now())
			p := accesstest.Callers["gp-clinician"]
			c, err := access.CallerOf(&p)
			if err != nil {
				t.Fatal(err)
			}
			decide := func(d *access.Decider) {
				if _, err := d.Filter(ctx, c, 'r'); err != nil {
					t.Error(err)
				}
			}
			one := &countingStore{Store: st}
			decide(access.New(one, pol))
			if one.searches.Load() == 0 {
				t.Fatal("a cold decision ran no search: the test measures nothing")
			}
			many := &countingStore{Store: st}
			d := access.New(many, pol)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 64 {
				wg.Go(func() { <-start; decide(d) })
			}
			close(start)
			wg.Wait()
			if got, want := many.searches.Load(), one.searches.Load(); got != want {
				t.Errorf("64 concurrent cold decisions ran %d searches; one runs %d", got, want)
			}
		})
	}
}

// TestDeciderKeepsFiltersWhileNothingChanges: with no write and no new
// grant, a caller's filter is compiled once and reused as time passes,
// though the caller's break-glass and self-claims are read again every ten
// seconds; only the facts' own refresh (a minute, for grace periods
// running out) compiles it anew.
func TestDeciderKeepsFiltersWhileNothingChanges(t *testing.T) {
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	start := time.Now()
	accesstest.Load(t, engine.New(st, engine.Config{BaseURL: "http://127.0.0.1/fhir"}), start)
	p := accesstest.Callers["gp-clinician"]
	c, err := access.CallerOf(&p)
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	d := access.New(cs, pol)
	var now atomic.Int64
	now.Store(start.UnixNano())
	d.SetClock(func() time.Time { return time.Unix(0, now.Load()) })
	decide := func(after time.Duration) int64 {
		now.Store(start.Add(after).UnixNano())
		before := cs.searches.Load()
		if _, err := d.Filter(ctx, c, 'r'); err != nil {
			t.Fatal(err)
		}
		return cs.searches.Load() - before
	}
	if n := decide(0); n == 0 {
		t.Fatal("the first decision ran no search: the test measures nothing")
	}
	for _, at := range []time.Duration{time.Second, 11 * time.Second, 25 * time.Second, 50 * time.Second} {
		if n := decide(at); n != 0 {
			t.Errorf("a decision %v later, nothing changed, ran %d searches: the filter was compiled again", at, n)
		}
	}
	if n := decide(61 * time.Second); n == 0 {
		t.Errorf("a decision a minute later ran no search: the facts were not refreshed")
	}
}
