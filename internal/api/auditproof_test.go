package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// outsideCheckpoint is a checkpoint as a party outside the node reads it:
// the signed note opened with the verifier key it was given out of band,
// and its text's size and root.
type outsideCheckpoint struct {
	size int64
	root tlog.Hash
}

func fetchCheckpoint(t *testing.T, root string, v note.Verifier) outsideCheckpoint {
	t.Helper()
	code, body := call(t, http.MethodGet, root+"/audit/checkpoint", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /audit/checkpoint: %d %s", code, body)
	}
	n, err := note.Open([]byte(body), note.VerifierList(v))
	if err != nil {
		t.Fatalf("the checkpoint does not open with the node's verifier key: %v\n%s", err, body)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != v.Name() || lines[3] != "" {
		t.Fatalf("checkpoint text %q: want origin, size, root", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q", lines[1])
	}
	rb, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rb) != tlog.HashSize {
		t.Fatalf("checkpoint root %q", lines[2])
	}
	var c outsideCheckpoint
	c.size = size
	copy(c.root[:], rb)
	return c
}

// fetchProof gets a proof's hashes over HTTP.
func fetchProof(t *testing.T, url string) []tlog.Hash {
	t.Helper()
	code, body := call(t, http.MethodGet, url, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var p struct{ Hashes []string }
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("GET %s: %v %s", url, err, body)
	}
	out := make([]tlog.Hash, len(p.Hashes))
	for i, s := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			t.Fatalf("proof hash %q", s)
		}
		copy(out[i][:], b)
	}
	return out
}

// TestAuditProofsOverHTTP: a party with no shell access to the node keeps
// two checkpoints fetched over HTTP with entries appended in between,
// checks their signatures with the verifier key, checks the consistency
// proof between them with tlog.CheckTree and an entry's inclusion proof
// with tlog.CheckRecord and the hash of the leaf data it fetched; a
// tampered proof, root or leaf fails the same checks.
func TestAuditProofsOverHTTP(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			dir := t.TempDir()
			l, err := audit.Open(ctx, st, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(ctx)
			base, tok := auditedNode(t, st, l)
			root := strings.TrimSuffix(base, "/fhir")
			vkey, err := audit.ReadVerifierKey(dir) // what `sharedcare audit key` prints
			if err != nil {
				t.Fatal(err)
			}
			v, err := note.NewVerifier(vkey)
			if err != nil {
				t.Fatal(err)
			}

			id := createPatient(t, base, tok)
			call(t, http.MethodGet, base+"/Patient/"+id, tok, "")
			old := fetchCheckpoint(t, root, v)
			if old.size < 2 {
				t.Fatalf("first checkpoint of %d entries, want the create and the read", old.size)
			}
			if again := fetchCheckpoint(t, root, v); again != old {
				t.Fatalf("asking for the checkpoint grew the log: %d then %d entries", old.size, again.size)
			}
			// Signing on demand happens at most once a second.
			time.Sleep(1100 * time.Millisecond)
			for range 3 {
				call(t, http.MethodGet, base+"/Patient/"+id, tok, "")
			}
			cur := fetchCheckpoint(t, root, v)
			if cur.size != old.size+3 {
				t.Fatalf("second checkpoint of %d entries, want %d", cur.size, old.size+3)
			}

			// History was only appended to.
			cp := fetchProof(t, fmt.Sprintf("%s/audit/proof/consistency?old=%d&new=%d", root, old.size, cur.size))
			if err := tlog.CheckTree(cp, cur.size, cur.root, old.size, old.root); err != nil {
				t.Fatalf("consistency proof does not check: %v", err)
			}
			bad := append([]tlog.Hash(nil), cp...)
			bad[0][0] ^= 1
			if tlog.CheckTree(bad, cur.size, cur.root, old.size, old.root) == nil {
				t.Fatal("a tampered consistency proof checks")
			}
			otherRoot := old.root
			otherRoot[5] ^= 1
			if tlog.CheckTree(cp, cur.size, cur.root, old.size, otherRoot) == nil {
				t.Fatal("the proof checks against a root the party never kept")
			}

			// An entry of the older checkpoint is in the newer tree.
			idx := old.size - 1
			ip := fetchProof(t, fmt.Sprintf("%s/audit/proof/inclusion?index=%d&size=%d", root, idx, cur.size))
			code, leaf := call(t, http.MethodGet, fmt.Sprintf("%s/audit/entry/%d", root, idx), tok, "")
			if code != http.StatusOK || !strings.HasPrefix(leaf, "sharedcare-audit-entry/1\n") {
				t.Fatalf("GET /audit/entry/%d: %d %s", idx, code, leaf)
			}
			if err := tlog.CheckRecord(ip, cur.size, cur.root, idx, tlog.RecordHash([]byte(leaf))); err != nil {
				t.Fatalf("inclusion proof does not check: %v", err)
			}
			forged := []byte(strings.Replace(leaf, "\n5:admin\n", "\n5:other\n", 1))
			if bytes.Equal(forged, []byte(leaf)) {
				t.Fatalf("leaf %q does not name the admin", leaf)
			}
			if tlog.CheckRecord(ip, cur.size, cur.root, idx, tlog.RecordHash(forged)) == nil {
				t.Fatal("an altered entry checks")
			}
			badIP := append([]tlog.Hash(nil), ip...)
			badIP[len(badIP)-1][31] ^= 1
			if tlog.CheckRecord(badIP, cur.size, cur.root, idx, tlog.RecordHash([]byte(leaf))) == nil {
				t.Fatal("a tampered inclusion proof checks")
			}
			if tlog.CheckRecord(ip, cur.size, cur.root, idx+1, tlog.RecordHash([]byte(leaf))) == nil {
				t.Fatal("the entry checks at another position")
			}
			// The entry served is the entry recorded.
			e, err := l.Entry(ctx, idx)
			if err != nil || !bytes.Equal(audit.LeafData(e), []byte(leaf)) {
				t.Fatalf("served leaf differs from entry %d (%v)", idx, err)
			}
			// Reading it was audited (and nothing else since: checkpoints and
			// proofs are not).
			got, err := l.Search(ctx, audit.Query{User: "admin", Limit: 1})
			if err != nil || len(got) != 1 || got[0].Index != cur.size || !strings.Contains(eventQuery(got[0].Event), fmt.Sprintf("/audit/entry/%d", idx)) ||
				!strings.Contains(string(got[0].Event), fmt.Sprintf(`"reference":"AuditEvent/%d"`, idx)) || !strings.Contains(string(got[0].Event), `"code":"audit-entry"`) {
				t.Fatalf("reading an entry is not audited as entry %d: %v %v", cur.size, err, got)
			}
		})
	}
}

// TestAuditProofParameters: a proof asked for with a missing, malformed or
// impossible parameter is a 400 OperationOutcome naming the parameter,
// never a 500; an entry past the log is a 404.
func TestAuditProofParameters(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			l, err := audit.Open(ctx, st, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(ctx)
			base, tok := auditedNode(t, st, l)
			root := strings.TrimSuffix(base, "/fhir")
			for range 3 {
				createPatient(t, base, tok)
			}
			n := fetchCheckpoint(t, root, l.Verifier()).size
			for _, c := range []struct {
				name, path string
				status     int
				param      string
			}{
				{"consistency without old", "/audit/proof/consistency?new=2", 400, "old"},
				{"old not a number", "/audit/proof/consistency?old=x&new=2", 400, "old"},
				{"old negative", "/audit/proof/consistency?old=-1&new=2", 400, "old"},
				{"old zero proves nothing", "/audit/proof/consistency?old=0&new=2", 400, "old"},
				{"old given twice", "/audit/proof/consistency?old=1&old=2&new=2", 400, "old"},
				{"new smaller than old", "/audit/proof/consistency?old=2&new=1", 400, "new"},
				{"new beyond the log", fmt.Sprintf("/audit/proof/consistency?old=1&new=%d", n+1000), 400, "new"},
				{"inclusion without size", "/audit/proof/inclusion?index=0", 400, "size"},
				{"index not a number", "/audit/proof/inclusion?index=a&size=2", 400, "index"},
				{"index outside the tree", "/audit/proof/inclusion?index=2&size=2", 400, "index"},
				{"size beyond the log", fmt.Sprintf("/audit/proof/inclusion?index=0&size=%d", n+1000), 400, "size"},
				{"entry not a number", "/audit/entry/x", 400, "index"},
				{"entry past the log", "/audit/entry/999999", 404, ""},
			} {
				t.Run(c.name, func(t *testing.T) {
					code, body := call(t, http.MethodGet, root+c.path, tok, "")
					if code != c.status || !strings.Contains(body, `"OperationOutcome"`) {
						t.Fatalf("%s: %d %s, want %d OperationOutcome", c.path, code, body, c.status)
					}
					if c.param != "" && !strings.Contains(body, `"expression":["`+c.param+`"]`) {
						t.Errorf("%s: the outcome does not name %s: %s", c.path, c.param, body)
					}
				})
			}
			// Equal sizes: nothing to prove, an empty proof.
			if p := fetchProof(t, fmt.Sprintf("%s/audit/proof/consistency?old=%d&new=%d", root, n, n)); len(p) != 0 {
				t.Errorf("consistency of a tree with itself: %d hashes", len(p))
			}
		})
	}
}

// TestAuditEntryAccess: an entry's leaf data says who looked at whose
// record, so only those who may see the entry get it: the privacy officer
// and the operator any, the person their own unrestricted ones; to the
// person another's or a restricted entry is the 404 of a missing one; a
// clinician is refused and a caller without a token gets a 401.
func TestAuditEntryAccess(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			l, err := audit.Open(ctx, st, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close(ctx)
			base, _, a := auditedNodeAuth(t, st, l)
			root := strings.TrimSuffix(base, "/fhir")
			rec := func(patient string, restricted bool) int64 {
				e := &audit.Entry{Time: time.Now(), User: "dr-x", Org: "A81001", Patients: []string{patient}, Action: "R", Outcome: "0",
					Restricted: restricted, Event: []byte(`{"resourceType":"AuditEvent","action":"R"}`)}
				if err := l.Record(ctx, e); err != nil {
					t.Fatal(err)
				}
				if err := l.Flush(ctx); err != nil { // for e.Index
					t.Fatal(err)
				}
				return e.Index
			}
			own, restricted, other := rec("pz", false), rec("pz", true), rec("py", false)
			issue := func(p auth.Principal) string {
				tok, err := a.Issue(p, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			person := issue(auth.Principal{Subject: "Patient/pz", Kind: auth.KindPatient, Scopes: []string{"patient/*.rs"}})
			po := issue(auth.Principal{Subject: "po-1", User: "po-1", Kind: auth.KindUser, Role: "privacy-officer", Organisation: "A81001", Scopes: []string{"user/*.rs"}})
			doc := issue(auth.Principal{Subject: "dr-x", User: "dr-x", Kind: auth.KindUser, Role: "gp-clinician", Organisation: "A81001", Scopes: []string{"user/*.rs"}})
			for _, c := range []struct {
				name   string
				tok    string
				index  int64
				status int
			}{
				{"the person reads their own entry", person, own, 200},
				{"a restricted entry does not exist for the person", person, restricted, 404},
				{"another's entry does not exist for the person", person, other, 404},
				{"the privacy officer reads a restricted entry", po, restricted, 200},
				{"the privacy officer reads anyone's", po, other, 200},
				{"a clinician is refused", doc, own, 403},
				{"no token", "", own, 401},
			} {
				t.Run(c.name, func(t *testing.T) {
					code, body := call(t, http.MethodGet, fmt.Sprintf("%s/audit/entry/%d", root, c.index), c.tok, "")
					if code != c.status {
						t.Fatalf("%d %s, want %d", code, body, c.status)
					}
					if c.status == 200 {
						e, err := l.Entry(ctx, c.index)
						if err != nil || body != string(audit.LeafData(e)) {
							t.Fatalf("served %q, want entry %d's leaf (%v)", body, c.index, err)
						}
					} else if strings.Contains(body, "dr-x") {
						t.Fatalf("a refusal discloses the entry: %s", body)
					}
				})
			}
		})
	}
}

// eventQuery is the query entity of an AuditEvent (base64Binary in FHIR).
func eventQuery(ev []byte) string {
	var e struct {
		Entity []struct {
			Query []byte `json:"query"`
		} `json:"entity"`
	}
	_ = json.Unmarshal(ev, &e)
	var out []string
	for _, en := range e.Entity {
		out = append(out, string(en.Query))
	}
	return strings.Join(out, " ")
}

// TestAuditCheckpointOnDemandIsBounded: anyone may ask for a checkpoint,
// and every request (a refused one too) appends to the log, so asking in a
// loop must not make the node sign and store a checkpoint per request.
func TestAuditCheckpointOnDemandIsBounded(t *testing.T) {
	ctx := context.Background()
	st := backend.ForTests(t)[0].Open(t)
	dir := t.TempDir()
	l, err := audit.Open(ctx, st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	base, _ := auditedNode(t, st, l)
	root := strings.TrimSuffix(base, "/fhir")
	for range 20 {
		if code, _ := call(t, http.MethodGet, base+"/Patient", "", ""); code != http.StatusUnauthorized {
			t.Fatalf("anonymous search: %d", code)
		}
		if code, body := call(t, http.MethodGet, root+"/audit/checkpoint", "", ""); code != http.StatusOK {
			t.Fatalf("GET /audit/checkpoint: %d %s", code, body)
		}
	}
	cs, err := st.(store.AuditStore).AuditCheckpoints(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) > 3 {
		t.Errorf("20 anonymous requests for a checkpoint stored %d checkpoints; want at most one a second", len(cs))
	}
}
