package smart

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkVerify measures what the revocation check adds to the
// verification of every FHIR request, against the store read a per-request
// check would have cost instead:
//
//	go test -run '^$' -bench Verify -benchtime 20000x ./internal/auth/smart
func BenchmarkVerify(b *testing.B) {
	st := backend.OpenSQLiteForTest(b)
	clock := new(atomic.Int64)
	clock.Store(time.Now().UnixNano())
	a, err := auth.Load(context.Background(), st, base)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(a, st, Config{BaseURL: base})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// A realistic revocation list: a hundred revoked grants.
	for i := range 100 {
		srv.revoked.revoke(ctx, "sid:"+randomToken(9)+string(rune('a'+i%26)), time.Now().Add(time.Hour))
	}
	tok, err := a.Issue(auth.Principal{Subject: "alice", User: "alice", Kind: auth.KindUser, Role: "nurse", Organisation: "RXX", Session: "s1"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token only", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("token and revocation list", func(b *testing.B) {
		for b.Loop() {
			if _, err := srv.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("token and a store read per request", func(b *testing.B) {
		for b.Loop() {
			p, err := a.Verify(ctx, tok)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.KV(ctx, bucketRevoked, "jti:"+p.TokenID); err == nil {
				b.Fatal("revoked")
			}
		}
	})
	_ = store.KV{}
}
