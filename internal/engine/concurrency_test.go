package engine

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// TestConcurrentIfMatch is the "done when": of 100 concurrent
// updates carrying the same If-Match version, exactly one succeeds and 99
// get 412.
func TestConcurrentIfMatch(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		if _, err := e.Update(ctx, "Patient", "race", []byte(`{"resourceType":"Patient","id":"race"}`), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		var (
			wg                sync.WaitGroup
			mu                sync.Mutex
			ok, failed, other int
		)
		for i := range 100 {
			wg.Go(func() {
				body := fmt.Sprintf(`{"resourceType":"Patient","id":"race","birthDate":"19%02d-01-01"}`, i)
				_, err := e.Update(ctx, "Patient", "race", []byte(body), WriteOptions{IfMatch: `W/"1"`})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case fhir.IsKind(err, fhir.EPreconditionFailed):
					failed++
				default:
					other++
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		if ok != 1 || failed != 99 {
			t.Errorf("got %d successes, %d 412s and %d other errors; want 1 and 99", ok, failed, other)
		}
		v, err := e.Read(ctx, "Patient", "race")
		if err != nil || v.VersionID != 2 {
			t.Errorf("current version %v (%v), want 2", v, err)
		}
	})
}

// TestConcurrentRepeatedOrganization is a feed like Synthea sending the same
// Organization in many concurrent transactions: with a conditional create
// (ifNoneExist) or a PUT it must end as one resource, never a duplicate and
// never a 500.
func TestConcurrentRepeatedOrganization(t *testing.T) {
	const n = 24
	org := `{"resourceType":"Organization","id":"org-put","identifier":[{"system":"https://github.com/synthetichealth/synthea","value":"shared-org"}],"name":"General Hospital"}`
	for _, tc := range []struct {
		name  string
		entry string
		query url.Values
	}{
		{"conditional create", `{"fullUrl":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000000","resource":` + org + `,"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=https://github.com/synthetichealth/synthea|shared-org"}}`,
			url.Values{"identifier": {"https://github.com/synthetichealth/synthea|shared-org"}}},
		{"PUT", `{"fullUrl":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000000","resource":` + org + `,"request":{"method":"PUT","url":"Organization/org-put"}}`,
			url.Values{"_id": {"org-put"}}},
		{"conditional update", `{"fullUrl":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000000","resource":` + org[:len(`{"resourceType":"Organization",`)] + org[len(`{"resourceType":"Organization","id":"org-put",`):] + `,"request":{"method":"PUT","url":"Organization?identifier=https://github.com/synthetichealth/synthea|shared-org"}}`,
			url.Values{"identifier": {"https://github.com/synthetichealth/synthea|shared-org"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
				ctx := context.Background()
				var wg sync.WaitGroup
				refs := make([]string, n)
				for i := range n {
					wg.Go(func() {
						b := txn("transaction", tc.entry,
							`{"resource":{"resourceType":"Patient","managingOrganization":{"reference":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000000"}},"request":{"method":"POST","url":"Patient"}}`)
						resp, err := e.Bundle(ctx, b, WriteOptions{})
						if err != nil {
							t.Errorf("transaction %d: %v", i, err)
							return
						}
						refs[i] = respEntries(t, resp)[1]["resource"].(fhir.Object)["managingOrganization"].(fhir.Object)["reference"].(string)
					})
				}
				wg.Wait()
				res, err := e.Search(ctx, "Organization", url.Values{"_total": {"accurate"}})
				if err != nil {
					t.Fatal(err)
				}
				if res["total"] != 1 {
					t.Fatalf("%v Organizations exist, want 1", res["total"])
				}
				m, _ := e.Search(ctx, "Organization", tc.query)
				if len(m["entry"].([]any)) != 1 {
					t.Fatalf("the criteria match %d Organizations, want 1", len(m["entry"].([]any)))
				}
				for i, r := range refs {
					if r != refs[0] {
						t.Errorf("patient %d references %s, patient 0 %s", i, r, refs[0])
					}
				}
			})
		})
	}
}
