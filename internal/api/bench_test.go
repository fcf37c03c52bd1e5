package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// BenchmarkReadByID measures the server side of GET /fhir/Patient/{id}
// (middleware, token check, engine, SQLite read, response) without the
// network, so that its CPU cost per request can be profiled
// (go test -bench ReadByID -cpuprofile cpu.out ./internal/api).
func BenchmarkReadByID(b *testing.B) {
	n := startNode(b, backend.OpenSQLiteForTest(b), nil)
	const ids = 200
	for i := range ids {
		resp, body := n.do(b, scenario{Method: "PUT", Path: fmt.Sprintf("/fhir/Patient/b%d", i), Headers: jsonCT,
			Body: fmt.Sprintf(`{"resourceType":"Patient","id":"b%d","gender":"female","name":[{"family":"Bench"}]}`, i)})
		if resp.StatusCode != 201 {
			b.Fatalf("seed: %d %s", resp.StatusCode, body)
		}
	}
	h := n.handler
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := httptest.NewRequest("GET", "/fhir/Patient/b"+fmt.Sprint(i%ids), nil)
			req.Header.Set("Authorization", "Bearer "+n.token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
			i++
		}
	})
}
