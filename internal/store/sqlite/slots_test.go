package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// Searches beyond the number of cores wait for a slot (see
// Store.searchSlots), and a search whose context ends while it waits
// returns, holding nothing.
func TestSearchesWaitForASlot(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := cap(s.searchSlots); got != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d search slots, want one per core (%d)", got, runtime.GOMAXPROCS(0))
	}
	q := &store.Query{Types: []string{"Patient"}}
	for range cap(s.searchSlots) {
		s.searchSlots <- struct{}{} // every slot busy
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Search(wctx, q); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with every slot busy: %v, want the context's deadline", err)
	}
	<-s.searchSlots // one slot frees
	if _, err := s.Search(ctx, q); err != nil {
		t.Fatalf("with a free slot: %v", err)
	}
	if len(s.searchSlots) != cap(s.searchSlots)-1 {
		t.Fatalf("a finished search kept its slot: %d of %d busy", len(s.searchSlots), cap(s.searchSlots))
	}
}
