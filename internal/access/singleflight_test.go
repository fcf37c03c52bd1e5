package access_test

import (
	"context"
	"slices"
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
// seconds; the facts' own refresh (a minute, for grace periods running
// out) reads them again and compiles the filter anew, behind the requests:
// the decision that finds them a minute old gets the filter at hand
// without waiting for any search, and a later one the filter compiled from
// the new facts.
func TestDeciderKeepsFiltersWhileNothingChanges(t *testing.T) {
	ctx := context.Background()
	cl := newClocked(t)
	d, cs, c := cl.d, cl.cs, cl.c
	decide := func(after time.Duration) (*store.Filter, int64) {
		t.Helper()
		cl.at(after)
		before := cs.searches.Load()
		f, err := d.Filter(ctx, c, 'r')
		if err != nil {
			t.Fatal(err)
		}
		return f, cs.searches.Load() - before
	}
	first, n := decide(0)
	if n == 0 {
		t.Fatal("the first decision ran no search: the test measures nothing")
	}
	for _, at := range []time.Duration{time.Second, 11 * time.Second, 25 * time.Second, 50 * time.Second} {
		if f, n := decide(at); n != 0 || f != first {
			t.Errorf("a decision %v later, nothing changed, ran %d searches (same filter: %v): the filter was compiled again", at, n, f == first)
		}
	}
	// A minute on, with every search of the store held: the decision does
	// not wait for the refresh.
	cs.hold()
	done := make(chan *store.Filter)
	go func() { f, _ := decide(61 * time.Second); done <- f }()
	select {
	case f := <-done:
		if f != first {
			t.Errorf("the decision that starts the refresh got another filter")
		}
	case <-time.After(5 * time.Second):
		cs.release()
		t.Fatal("the decision a minute later waited for the facts to be read again")
	}
	cs.release()
	// Then the new facts are read and the filter compiled from them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, _ := decide(62 * time.Second)
		if f != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the filter was never compiled from the refreshed facts")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if cs.searches.Load() == 0 {
		t.Fatal("no search ran")
	}
}

// TestDeciderSeesAWriteDuringARefreshBehind: while facts past their
// minute are read again behind the requests, a write they depend on (the
// person's GP registration removed) takes effect on the next decision,
// which waits for the facts rather than decide on the old ones.
func TestDeciderSeesAWriteDuringARefreshBehind(t *testing.T) {
	ctx := context.Background()
	cl := newClocked(t)
	d, cs, c, eng := cl.d, cl.cs, cl.c, cl.eng
	related := func(after time.Duration) bool {
		t.Helper()
		cl.at(after)
		f, err := d.Filter(ctx, c, 'r')
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range f.Grants {
			if slices.Contains(g.Patients, "alice") {
				return true
			}
		}
		return false
	}
	if !related(0) {
		t.Fatal("the GP clinician is not related to alice: the test measures nothing")
	}
	cs.hold()
	related(61 * time.Second) // starts the refresh behind, held
	// alice leaves the practice.
	if _, err := eng.Update(ctx, "Patient", "alice", []byte(`{"resourceType":"Patient","id":"alice","meta":{"source":"https://sharedcare.example/ods/`+accesstest.GP1+`"},"name":[{"family":"alice","given":["Test"]}],"gender":"female"}`), engine.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	d.Changed()
	go func() { time.Sleep(100 * time.Millisecond); cs.release() }()
	if related(61*time.Second + time.Millisecond) {
		t.Errorf("the decision after the write still found alice related to the practice")
	}
}

// clocked is a decider over the access fixture, its searches counted and
// holdable, on a clock the test moves; c is the GP clinician.
type clocked struct {
	d     *access.Decider
	cs    *gatedStore
	c     *access.Caller
	eng   *engine.Engine
	start time.Time
	now   atomic.Int64
}

func newClocked(t *testing.T) *clocked {
	t.Helper()
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	st := backend.ForTests(t)[0].Open(t)
	cl := &clocked{start: time.Now(), eng: engine.New(st, engine.Config{BaseURL: "http://127.0.0.1/fhir"})}
	accesstest.Load(t, cl.eng, cl.start)
	p := accesstest.Callers["gp-clinician"]
	if cl.c, err = access.CallerOf(&p); err != nil {
		t.Fatal(err)
	}
	cl.cs = &gatedStore{countingStore: countingStore{Store: st}}
	cl.d = access.New(cl.cs, pol)
	cl.now.Store(cl.start.UnixNano())
	cl.d.SetClock(func() time.Time { return time.Unix(0, cl.now.Load()) })
	return cl
}

// at sets the clock to after past the start.
func (cl *clocked) at(after time.Duration) { cl.now.Store(cl.start.Add(after).UnixNano()) }

// gatedStore is a countingStore whose searches can be held.
type gatedStore struct {
	countingStore
	mu   sync.Mutex
	gate chan struct{} // closed: searches run; nil: not held
}

func (g *gatedStore) hold() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) release() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedStore) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.countingStore.Search(ctx, q)
}
