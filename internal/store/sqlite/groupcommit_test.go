package sqlite

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// TestGroupCommit checks that Writes queued while a commit is in progress
// share the next COMMIT (one fsync for all), and that each still gets its
// own result. SQLite-specific: it is how this backend meets the ingest
// target with synchronous=FULL.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lu := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	putOne := func(id string) func(store.Tx) error {
		return func(tx store.Tx) error {
			return tx.Put(ctx, &store.Put{Type: "Patient", ID: id, VersionID: 1, LastUpdated: lu, Body: []byte(`{"resourceType":"Patient"}`)})
		}
	}

	// The first Write holds the writer until the others are queued.
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Write(ctx, func(tx store.Tx) error {
			<-release
			return putOne("first")(tx)
		})
	}()
	for s.batches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	before := s.batches.Load()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("p%d", i)
			if i == 7 {
				errs[i] = s.Write(ctx, func(tx store.Tx) error {
					if err := putOne(id)(tx); err != nil {
						return err
					}
					return fmt.Errorf("refused %s", id)
				})
				return
			}
			errs[i] = s.Write(ctx, putOne(id))
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d Writes queued", len(s.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first Write: %v", err)
	}
	if got := s.batches.Load() - before; got != 1 {
		t.Errorf("%d queued Writes took %d commits, want 1", n, got)
	}
	for i, err := range errs {
		id := fmt.Sprintf("p%d", i)
		_, rerr := s.Read(ctx, "Patient", id)
		if i == 7 {
			if err == nil || rerr == nil {
				t.Errorf("the refused Write in the batch: write error %v, read error %v; want both set", err, rerr)
			}
			continue
		}
		if err != nil || rerr != nil {
			t.Errorf("Write %s in the batch: write error %v, read error %v; want none", id, err, rerr)
		}
	}
}

// TestSizes checks that Sizes accounts for the bodies and the index rows
// written.
func TestSizes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func(name string) int64 {
		sizes, err := s.Sizes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range sizes {
			if ts.Name == name {
				return ts.Bytes
			}
		}
		t.Fatalf("Sizes lists no %q", name)
		return 0
	}
	v0, i0 := size("resource_versions"), size("idx_token_code")
	body := []byte(`{"resourceType":"Patient","text":"` + strings.Repeat("x", 2000) + `"}`)
	err = s.Write(ctx, func(tx store.Tx) error {
		for i := range 200 {
			p := &store.Put{Type: "Patient", ID: fmt.Sprint(i), VersionID: 1, LastUpdated: time.Now(), Body: body,
				Index: store.Index{Tokens: []store.Token{{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Code: fmt.Sprint(9000000000 + i)}}}}
			if err := tx.Put(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v1 := size("resource_versions"); v1-v0 < 200*2000 {
		t.Errorf("resource_versions grew by %d bytes for 200 bodies of 2 KB, want at least 400,000", v1-v0)
	}
	if i1 := size("idx_token_code"); i1 <= i0 {
		t.Errorf("idx_token_code did not grow (%d -> %d) with 200 token rows", i0, i1)
	}
}

// TestPutFailingHalfWay checks that a Put that fails after it began writing
// fails its whole Write even if the function ignores the error, so a
// resource row cannot commit without its version or index rows. A NaN
// bound is the trigger: SQLite stores NaN as NULL, which the index table
// refuses after the resource and version rows are written.
func TestPutFailingHalfWay(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var putErr error
	err = s.Write(ctx, func(tx store.Tx) error {
		putErr = tx.Put(ctx, &store.Put{Type: "Observation", ID: "o", VersionID: 1, LastUpdated: time.Now(), Body: []byte(`{}`),
			Index: store.Index{Numbers: []store.Number{{Param: "value", Lo: math.NaN(), Hi: 1}}}})
		return nil // a careless caller
	})
	if putErr == nil {
		t.Fatal("Put with a NaN index bound: got nil error")
	}
	if err == nil {
		t.Error("Write whose function ignored a half-done Put: got nil error, want the Put's")
	}
	if _, err := s.Read(ctx, "Observation", "o"); err == nil {
		t.Error("the half-done Put's resource was committed")
	}
}
