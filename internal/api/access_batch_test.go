package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// TestBatchEntriesAreDecidedAsAlone: inside a batch, a read by id (read,
// vread, instance history) is decided with the caller's read permission
// and a search with their search permission, as the same requests sent one
// by one are: a read-only token reads by id in a batch and searches
// nothing; a search-only token searches and reads nothing by id. A refused
// entry is the 404 of a missing resource (or an empty searchset), never a
// disclosure.
func TestBatchEntriesAreDecidedAsAlone(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			n := startAccessNode(t, b.Open(t))
			p := accesstest.Callers["gp-clinician"]
			token := func(scope string) string {
				q := p
				q.Scopes = []string{scope}
				tok, err := n.auth.Issue(q, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				return "Bearer " + tok
			}
			readOnly, searchOnly, both := token("user/*.r"), token("user/*.s"), token("user/*.rs")
			const batch = `{"resourceType":"Bundle","type":"batch","entry":[
				{"request":{"method":"GET","url":"Patient/alice"}},
				{"request":{"method":"GET","url":"Patient/alice/_history/1"}},
				{"request":{"method":"GET","url":"Patient/alice/_history"}},
				{"request":{"method":"GET","url":"Patient?_id=alice"}}]}`
			// status of each entry, and the searchset's size
			for _, c := range []struct {
				name, token string
				want        [3]string
				found       int
			}{
				{"read and search", both, [3]string{"200", "200", "200"}, 1},
				{"read only", readOnly, [3]string{"200", "200", "200"}, 0},
				{"search only", searchOnly, [3]string{"404", "404", "404"}, 1},
			} {
				t.Run(c.name, func(t *testing.T) {
					// The requests alone, as the reference.
					for i, path := range []string{"/fhir/Patient/alice", "/fhir/Patient/alice/_history/1", "/fhir/Patient/alice/_history"} {
						resp, body := n.do(t, scenario{Method: "GET", Path: path, Token: c.token})
						if got := resp.Status[:3]; got != c.want[i] && !(c.want[i] == "404" && got == "403") {
							t.Errorf("GET %s alone: %s %s, want %s", path, resp.Status, trim(body), c.want[i])
						}
					}
					resp, body := n.do(t, scenario{Method: "POST", Path: "/fhir", Body: batch, Token: c.token,
						Headers: map[string]string{"Content-Type": "application/fhir+json"}})
					if resp.StatusCode != 200 {
						t.Fatalf("batch: %s %s", resp.Status, trim(body))
					}
					var out struct {
						Entry []struct {
							Resource struct {
								Entry []json.RawMessage `json:"entry"`
							} `json:"resource"`
							Response struct{ Status string } `json:"response"`
						} `json:"entry"`
					}
					if err := json.Unmarshal(body, &out); err != nil || len(out.Entry) != 4 {
						t.Fatalf("batch response: %v %s", err, trim(body))
					}
					for i := range 3 {
						if got := out.Entry[i].Response.Status; len(got) < 3 || got[:3] != c.want[i] {
							t.Errorf("entry %d: %q, want %s", i, got, c.want[i])
						}
					}
					if got := len(out.Entry[3].Resource.Entry); got != c.found {
						t.Errorf("the search entry found %d, want %d", got, c.found)
					}
				})
			}
		})
	}
}
