package api_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// FuzzRequest sends arbitrary methods, paths, headers and bodies through the
// whole stack (middleware, engine, SQLite) and checks issue 2's rule for bad
// input: never a 500 (501 for an unimplemented feature is honest), and
// every error is an OperationOutcome.
func FuzzRequest(f *testing.F) {
	f.Add(uint8(1), "/fhir/Patient", "application/fhir+json", "", "return=minimal", []byte(`{"resourceType":"Patient"}`))
	f.Add(uint8(2), "/fhir/Patient/x", "application/json", "gzip", "handling=lenient", []byte(`{"resourceType":"Patient","id":"x","foo":1}`))
	f.Add(uint8(3), "/fhir/Patient/x", "application/json-patch+json", "", "", []byte(`[{"op":"add","path":"/gender","value":"male"}]`))
	f.Add(uint8(1), "/fhir", "application/fhir+json", "", "return=OperationOutcome", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/x"}}]}`))
	f.Add(uint8(0), "/fhir/Patient?_id=x&_format=json&_pretty=true&_summary=true", "", "", "", []byte(nil))
	f.Add(uint8(1), "/fhir/Patient/_search", "application/x-www-form-urlencoded", "", "handling=strict", []byte("identifier=a|b&_count=2"))
	f.Add(uint8(4), "/fhir/Patient?identifier=a|b", "", "", "", []byte(nil))
	n := startNode(f, backend.OpenSQLiteForTest(f), nil)
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
	f.Fuzz(func(t *testing.T, m uint8, path, ctype, cenc, prefer string, body []byte) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return // net/http refuses such a request line before any handler runs
		}
		req := httptest.NewRequest(methods[int(m)%len(methods)], "http://127.0.0.1"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+n.token)
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Content-Encoding", cenc)
		req.Header.Set("Prefer", prefer)
		w := httptest.NewRecorder()
		n.handler.ServeHTTP(w, req)
		if w.Code == 500 {
			t.Fatalf("%s %q: status %d: %s", req.Method, path, w.Code, w.Body.Bytes())
		}
		if w.Code >= 400 && req.Method != "HEAD" && w.Header().Get("Content-Encoding") == "" {
			var o map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &o); err != nil || o["resourceType"] != "OperationOutcome" {
				t.Fatalf("%s %q: status %d without an OperationOutcome: %s", req.Method, path, w.Code, w.Body.Bytes())
			}
		}
	})
}
