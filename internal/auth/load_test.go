package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// TestKeyIsSharedThroughTheStore checks what admin-token relies on: every
// process that opens the same store signs and verifies with the same key,
// created once.
func TestKeyIsSharedThroughTheStore(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			ctx := context.Background()
			const base = "http://127.0.0.1:8080/fhir"
			minter, err := auth.Load(ctx, st, base)
			if err != nil {
				t.Fatal(err)
			}
			server, err := auth.Load(ctx, st, base)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := minter.IssueAdmin(time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := server.Verify(ctx, tok); err != nil {
				t.Fatalf("a token minted by one Authority of the store is refused by another: %v", err)
			}
			elsewhere, err := auth.Load(ctx, b.Open(t), base)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := elsewhere.Verify(ctx, tok); err == nil {
				t.Fatal("a node with another store accepted the token")
			}
		})
	}
}
