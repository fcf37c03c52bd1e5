package engine

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// FuzzBundle feeds arbitrary bytes to Engine.Bundle on a real SQLite store.
// Whatever the input, it must not panic, and every failure must be a
// *fhir.Error that is not an internal error: bad input is the client's
// problem (4xx), never a 500. Batch entries are held to the same rule.
func FuzzBundle(f *testing.F) {
	patch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/active","value":false},{"op":"test","path":"/id","value":"f1"}]`))
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"resourceType":"Bundle"}`,
		`{"resourceType":"Bundle","type":"transaction"}`,
		`{"resourceType":"Bundle","type":"batch","entry":[null,1,"x",{},{"request":{}}]}`,
		string(txn("transaction",
			`{"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","resource":{"resourceType":"Patient","id":"x","identifier":[{"system":"urn:s","value":"1"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:s|1"}}`,
			`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"},"performer":[{"reference":"Patient?identifier=urn:s|1"}]},"request":{"method":"POST","url":"Observation"}}`,
			`{"resource":{"resourceType":"Patient","id":"f1","active":true},"request":{"method":"PUT","url":"Patient/f1"}}`,
			`{"resource":{"resourceType":"Patient","active":true},"request":{"method":"PUT","url":"Patient?identifier=urn:s|2"}}`,
			`{"request":{"method":"DELETE","url":"Patient?identifier=urn:s|3"}}`,
			`{"request":{"method":"GET","url":"Patient?_id=f1&_count=1"}}`,
			`{"request":{"method":"GET","url":"Patient/f1/_history/1"}}`)),
		string(txn("batch",
			`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+patch+`"},"request":{"method":"PATCH","url":"Patient/f1","ifMatch":"W/\"1\""}}`,
			`{"request":{"method":"DELETE","url":"Patient/f1"}}`,
			`{"request":{"method":"GET","url":"Patient/f1"}}`,
			`{"request":{"method":"HEAD","url":"?_type=Patient"}}`,
			`{"resource":{"resourceType":"Patient","id":"f1"},"request":{"method":"PUT","url":"`+testBase+`/Patient/f1"}}`)),
		string(txn("transaction", `{"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/a"}}`, `{"request":{"method":"DELETE","url":"Patient/a"}}`)),
		string(txn("transaction", `{"resource":{"resourceType":"Patient","birthDate":"2020-13-01","_birthDate":{"extension":[]}},"request":{"method":"POST","url":"Patient"}}`)),
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","contained":[{"resourceType":"Bundle","type":"transaction","entry":[]}]}}]}`,
		strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200),
	} {
		f.Add([]byte(s))
	}
	// A small real transaction: the first entries of a Synthea bundle.
	if files, _ := filepath.Glob(filepath.Join(dataRoot(), "synthea-r4", "*.json.gz")); len(files) > 0 {
		b := parseBody(f, readData(f, files[0]))
		b["entry"] = b["entry"].([]any)[:6]
		f.Add(fhir.Marshal(b))
	}
	st := backend.OpenSQLiteForTest(f)
	e := New(st, Config{BaseURL: testBase, MaxBundleEntries: 50})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := e.Bundle(ctx, data, WriteOptions{Lenient: len(data)%2 == 0})
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error of type %T, not *fhir.Error: %v", err, err)
			}
			if fe.Kind == fhir.EInternal {
				t.Fatalf("internal error for client input: %v", err)
			}
			return
		}
		out := fhir.Marshal(resp)
		r, perr := fhir.ParseObject(out, 0)
		if perr != nil {
			t.Fatalf("response does not parse: %v", perr)
		}
		if typ, _ := r["type"].(string); typ != "transaction-response" && typ != "batch-response" {
			t.Fatalf("response type %q", typ)
		}
		if strings.Contains(string(out), `"status":"500`) {
			t.Fatalf("a batch entry failed with 500: %s", out)
		}
	})
}
