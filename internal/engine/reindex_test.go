package engine

import (
	"context"
	"net/url"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

func TestReindex(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		loadSearchFixture(t, e)
		var calls []int
		n, err := e.Reindex(ctx, 4, func(done int) { calls = append(calls, done) })
		if fhir.IsKind(err, fhir.ENotSupported) {
			t.Skipf("this backend does not implement store.Reindexer yet: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != len(searchFixture) {
			t.Errorf("reindexed %d, want %d", n, len(searchFixture))
		}
		if len(calls) != (len(searchFixture)+3)/4 || calls[len(calls)-1] != n {
			t.Errorf("progress calls %v, want one per batch of 4 ending at %d", calls, n)
		}
		// The rows are the same as written: searches still find exactly the same.
		b, err := e.Search(ctx, "Observation", url.Values{"subject:Patient.organization.name": {"acme"}, "_total": {"accurate"}})
		if err != nil {
			t.Fatal(err)
		}
		if b["total"] != 4 {
			t.Errorf("after reindex the chained search finds %v, want 4", b["total"])
		}
		v, err := e.Read(ctx, "Patient", "p1")
		if err != nil || v.VersionID != 1 {
			t.Errorf("reindex wrote a version: %v %v", v, err)
		}
	})
}
