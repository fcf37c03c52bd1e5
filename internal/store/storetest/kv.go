package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The conformance cases of the key-value space (store.KV).

func testKVRoundTrip(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	_, err := s.KV(ctx, "users", "alice")
	wantKind(t, "KV of a missing entry", err, fhir.ENotFound)

	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond).UTC()
	e := &store.KV{Bucket: "users", Key: "alice", Value: []byte("v1"), Expires: exp}
	if err := s.PutKV(ctx, e); err != nil || e.Version != 1 {
		t.Fatalf("first PutKV: version %d, %v; want 1, nil", e.Version, err)
	}
	got, err := s.KV(ctx, "users", "alice")
	if err != nil || string(got.Value) != "v1" || got.Version != 1 || !got.Expires.Equal(exp) {
		t.Fatalf("KV after PutKV: got %+v, %v; want v1, version 1, expires %v", got, err, exp)
	}
	e2 := &store.KV{Bucket: "users", Key: "alice", Value: []byte("v2")}
	if err := s.PutKV(ctx, e2); err != nil || e2.Version != 2 {
		t.Fatalf("unconditional replace: version %d, %v; want 2, nil", e2.Version, err)
	}
	got, err = s.KV(ctx, "users", "alice")
	if err != nil || string(got.Value) != "v2" || got.Version != 2 || !got.Expires.IsZero() {
		t.Errorf("KV after replace: got %+v, %v; want v2, version 2, no expiry", got, err)
	}
	// The same key in another bucket is another entry.
	if _, err := s.KV(ctx, "clients", "alice"); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("KV of the key in another bucket: got %v, want ENotFound", err)
	}
	// An empty value is a value, not an absence.
	if err := s.PutKV(ctx, &store.KV{Bucket: "users", Key: "empty"}); err != nil {
		t.Fatalf("PutKV with no value: %v", err)
	}
	if got, err := s.KV(ctx, "users", "empty"); err != nil || len(got.Value) != 0 {
		t.Errorf("KV of an empty value: got %+v, %v", got, err)
	}
}

func testKVCompareAndSwap(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	if err := s.PutKV(ctx, &store.KV{Bucket: "b", Key: "k", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	ok := &store.KV{Bucket: "b", Key: "k", Value: []byte("b"), Version: 1}
	if err := s.PutKV(ctx, ok); err != nil || ok.Version != 2 {
		t.Fatalf("swap at the current version: version %d, %v; want 2, nil", ok.Version, err)
	}
	stale := &store.KV{Bucket: "b", Key: "k", Value: []byte("stale"), Version: 1}
	wantKind(t, "swap at a stale version", s.PutKV(ctx, stale), fhir.EConflict)
	if got, _ := s.KV(ctx, "b", "k"); got == nil || string(got.Value) != "b" || got.Version != 2 {
		t.Errorf("after a refused swap: got %+v, want the value b at version 2 unchanged", got)
	}
	wantKind(t, "swap of an absent entry", s.PutKV(ctx, &store.KV{Bucket: "b", Key: "none", Version: 1}), fhir.EConflict)
	if _, err := s.KV(ctx, "b", "none"); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("a refused swap created the entry: %v", err)
	}

	// Concurrent read-modify-write counters built on the swap lose nothing.
	const n = 20
	if err := s.PutKV(ctx, &store.KV{Bucket: "b", Key: "count", Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			for {
				cur, err := s.KV(ctx, "b", "count")
				if err != nil {
					errs <- err
					return
				}
				var v int
				fmt.Sscan(string(cur.Value), &v)
				err = s.PutKV(ctx, &store.KV{Bucket: "b", Key: "count", Value: fmt.Append(nil, v+1), Version: cur.Version})
				if fhir.IsKind(err, fhir.EConflict) {
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent swap: %v", err)
	}
	if got, err := s.KV(ctx, "b", "count"); err != nil || string(got.Value) != fmt.Sprint(n) {
		t.Errorf("counter after %d swapped increments: got %+v, %v", n, got, err)
	}
}

func testKVIfAbsent(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Hour)
	first := &store.KV{Bucket: "jti", Key: "client|abc", Value: []byte("first"), Expires: exp}
	if created, err := s.PutKVIfAbsent(ctx, first); err != nil || !created || first.Version != 1 {
		t.Fatalf("first PutKVIfAbsent: created %v, version %d, %v; want true, 1, nil", created, first.Version, err)
	}
	if created, err := s.PutKVIfAbsent(ctx, &store.KV{Bucket: "jti", Key: "client|abc", Value: []byte("second"), Expires: exp}); err != nil || created {
		t.Errorf("second PutKVIfAbsent: created %v, %v; want false, nil", created, err)
	}
	if got, _ := s.KV(ctx, "jti", "client|abc"); got == nil || string(got.Value) != "first" {
		t.Errorf("after a refused create: got %+v, want the first value kept", got)
	}

	// Of many racing creators exactly one wins.
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range n {
		wg.Go(func() {
			created, err := s.PutKVIfAbsent(ctx, &store.KV{Bucket: "jti", Key: "race", Value: fmt.Append(nil, i), Expires: exp})
			if err != nil {
				t.Errorf("racing PutKVIfAbsent: %v", err)
			}
			if created {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("racing PutKVIfAbsent: %d callers created the entry, want exactly 1", wins)
	}
}

func testKVExpiry(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	soon := time.Now().Add(300 * time.Millisecond)
	for _, k := range []string{"a", "b"} {
		if err := s.PutKV(ctx, &store.KV{Bucket: "tok", Key: k, Value: []byte(k), Expires: soon}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutKV(ctx, &store.KV{Bucket: "tok", Key: "c", Value: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.KV(ctx, "tok", "a"); err != nil || string(got.Value) != "a" {
		t.Fatalf("KV before expiry: got %+v, %v", got, err)
	}
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	if _, err := s.KV(ctx, "tok", "a"); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("KV after expiry: got %v, want ENotFound", err)
	}
	if got := kvKeys(t, s, "tok", ""); !slices.Equal(got, []string{"c"}) {
		t.Errorf("ListKV after expiry: got %v, want [c]", got)
	}
	wantKind(t, "swap of an expired entry", s.PutKV(ctx, &store.KV{Bucket: "tok", Key: "b", Version: 1}), fhir.EConflict)
	e := &store.KV{Bucket: "tok", Key: "a", Value: []byte("new")}
	if created, err := s.PutKVIfAbsent(ctx, e); err != nil || !created || e.Version != 1 {
		t.Errorf("PutKVIfAbsent over an expired entry: created %v, version %d, %v; want true, 1, nil", created, e.Version, err)
	}
	e = &store.KV{Bucket: "tok", Key: "b", Value: []byte("new")}
	if err := s.PutKV(ctx, e); err != nil || e.Version != 1 {
		t.Errorf("PutKV over an expired entry: version %d, %v; want 1 (a new entry), nil", e.Version, err)
	}
}

func testKVDeleteList(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := ctxT(t)
	for _, k := range []string{"org/RXX/u2", "org/RXX/u1", "org/RYY/u3", "org/RX", "zz"} {
		if err := s.PutKV(ctx, &store.KV{Bucket: "roles", Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutKV(ctx, &store.KV{Bucket: "other", Key: "org/RXX/u9"}); err != nil {
		t.Fatal(err)
	}
	if got, want := kvKeys(t, s, "roles", ""), []string{"org/RX", "org/RXX/u1", "org/RXX/u2", "org/RYY/u3", "zz"}; !slices.Equal(got, want) {
		t.Errorf("ListKV of the bucket: got %v, want %v", got, want)
	}
	if got, want := kvKeys(t, s, "roles", "org/RXX/"), []string{"org/RXX/u1", "org/RXX/u2"}; !slices.Equal(got, want) {
		t.Errorf("ListKV by prefix: got %v, want %v", got, want)
	}
	if got := kvKeys(t, s, "roles", "nothing"); len(got) != 0 {
		t.Errorf("ListKV of a prefix with no keys: got %v, want none", got)
	}
	list, _ := s.ListKV(ctx, "roles", "zz")
	if len(list) != 1 || !bytes.Equal(list[0].Value, []byte("zz")) || list[0].Version != 1 || list[0].Bucket != "roles" {
		t.Errorf("ListKV entry: got %+v, want bucket, value and version filled", list)
	}
	if err := s.DeleteKV(ctx, "roles", "org/RXX/u1"); err != nil {
		t.Fatalf("DeleteKV: %v", err)
	}
	if _, err := s.KV(ctx, "roles", "org/RXX/u1"); !fhir.IsKind(err, fhir.ENotFound) {
		t.Errorf("KV after DeleteKV: got %v, want ENotFound", err)
	}
	if err := s.DeleteKV(ctx, "roles", "never"); err != nil {
		t.Errorf("DeleteKV of a missing entry: %v, want nil", err)
	}
	e := &store.KV{Bucket: "roles", Key: "org/RXX/u1"}
	if created, err := s.PutKVIfAbsent(ctx, e); err != nil || !created || e.Version != 1 {
		t.Errorf("PutKVIfAbsent after DeleteKV: created %v, version %d, %v", created, e.Version, err)
	}
	for _, bad := range []*store.KV{{Bucket: "", Key: "k"}, {Bucket: "b", Key: ""}} {
		if err := s.PutKV(ctx, bad); err == nil {
			t.Errorf("PutKV %+v: got nil error, want a refusal", bad)
		}
		if _, err := s.PutKVIfAbsent(ctx, bad); err == nil {
			t.Errorf("PutKVIfAbsent %+v: got nil error, want a refusal", bad)
		}
	}
}

func testKVReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the backend gives no Reopen")
	}
	s := h.Open(t)
	ctx := ctxT(t)
	if err := s.PutKV(ctx, &store.KV{Bucket: "users", Key: "alice", Value: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	s = h.Reopen(t, s)
	if got, err := s.KV(ctx, "users", "alice"); err != nil || string(got.Value) != "kept" {
		t.Errorf("KV after reopen: got %+v, %v; want the value kept", got, err)
	}
}

func kvKeys(t testing.TB, s store.Store, bucket, prefix string) []string {
	t.Helper()
	list, err := s.ListKV(ctxT(t), bucket, prefix)
	if err != nil {
		t.Fatalf("ListKV %s %q: %v", bucket, prefix, err)
	}
	var keys []string
	for _, e := range list {
		keys = append(keys, e.Key)
	}
	return keys
}
