package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// write creates a file under dir, gzipping it when the name ends in .gz.
func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte(content)
	if strings.HasSuffix(name, ".gz") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		data = buf.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readAll runs the reader over files and returns what it emitted and reported.
func readAll(t *testing.T, batchSize int, files ...string) ([]*Batch, []Failure) {
	t.Helper()
	var (
		batches []*Batch
		fails   []Failure
	)
	rd := &reader{
		batchSize: batchSize,
		emit:      func(b *Batch) error { batches = append(batches, b); return nil },
		fail:      func(f Failure) { fails = append(fails, f) },
	}
	for _, f := range files {
		if err := rd.file(context.Background(), f); err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
	}
	return batches, fails
}

// entries decodes a batch as the transaction a sink would receive.
func entries(t *testing.T, b *Batch) []fhir.Object {
	t.Helper()
	bundle, err := fhir.ParseObject(b.Body("transaction"), 0)
	if err != nil {
		t.Fatalf("batch body is not JSON: %v\n%s", err, b.Body("transaction"))
	}
	list, _ := bundle["entry"].([]any)
	out := make([]fhir.Object, len(list))
	for i, e := range list {
		out[i] = e.(fhir.Object)
	}
	return out
}

func request(e fhir.Object) string {
	r := e["request"].(fhir.Object)
	return r["method"].(string) + " " + r["url"].(string)
}

func TestFilesWalksDirectoriesInLexicalOrderKeepingFHIRFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"b/2.ndjson", "b/10.json.gz", "a.json", "LICENSE", ".hidden.json", ".git/x.json", "c.NDJSON.GZ", "notes.txt",
	} {
		write(t, dir, name, "{}")
	}
	single := write(t, t.TempDir(), "one.json", "{}")
	got, err := Files([]string{dir, single})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], dir+"/")
	}
	want := []string{"a.json", "b/10.json.gz", "b/2.ndjson", "c.NDJSON.GZ", single}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFilesRejectsAnExplicitFileOfAnotherKind(t *testing.T) {
	for _, name := range []string{"data.csv", "missing.json"} {
		path := filepath.Join(t.TempDir(), name)
		if name == "data.csv" {
			write(t, filepath.Dir(path), name, "a,b")
		}
		if _, err := Files([]string{path}); !fhir.IsKind(err, fhir.EInvalid) {
			t.Errorf("%s: got %v, want an EInvalid error", name, err)
		}
	}
}

const ndjson = `{"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}]}
{"resourceType":"Observation","status":"final","code":{"text":"x"}}

{"resourceType":"Patient","id":"p2"}
not json
{"resourceType":"Patient","id":"bad/id"}
{"id":"x"}
{"resourceType":"Patient","id":"p3"}`

func TestNDJSONGroupsLinesIntoTransactionsKeepingIDs(t *testing.T) {
	for _, name := range []string{"in.ndjson", "in.ndjson.gz"} {
		t.Run(name, func(t *testing.T) {
			path := write(t, t.TempDir(), name, ndjson)
			batches, fails := readAll(t, 2, path)
			var (
				got   []string
				where []string
				bytes int64
			)
			for _, b := range batches {
				if len(b.Entries) > 2 {
					t.Errorf("a batch holds %d entries, want at most 2", len(b.Entries))
				}
				for _, e := range entries(t, b) {
					got = append(got, request(e))
				}
				where = append(where, b.Where...)
				bytes += b.Bytes
			}
			want := []string{"PUT Patient/p1", "POST Observation", "PUT Patient/p2", "PUT Patient/p3"}
			if !slices.Equal(got, want) {
				t.Errorf("requests: got %q, want %q", got, want)
			}
			if w := []string{"line 1", "line 2", "line 4", "line 8"}; !slices.Equal(where, w) {
				t.Errorf("locations: got %q, want %q", where, w)
			}
			info, _ := os.Stat(path)
			if bytes != info.Size() {
				t.Errorf("batches account for %d bytes, want the file size %d", bytes, info.Size())
			}
			var failed []string
			for _, f := range fails {
				failed = append(failed, f.Entry)
			}
			if w := []string{"line 5", "line 6", "line 7"}; !slices.Equal(failed, w) {
				t.Errorf("failures at %q, want %q (%v)", failed, w, fails)
			}
		})
	}
}

func TestNDJSONKeepsTheResourceBytesUnchanged(t *testing.T) {
	line := `{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50}}`
	batches, _ := readAll(t, 10, write(t, t.TempDir(), "o.ndjson", line+"\n"))
	if len(batches) != 1 {
		t.Fatalf("got %d batches, want 1", len(batches))
	}
	if !bytes.Contains(batches[0].Body("transaction"), []byte(`"resource":`+line+`,`)) {
		t.Errorf("body %s does not embed the line verbatim", batches[0].Body("transaction"))
	}
}

// endless yields NDJSON lines forever: a reader that loaded whole files
// would never return from it.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	line := fmt.Sprintf(`{"resourceType":"Patient","id":"p%d"}`+"\n", e.n)
	e.n++
	return copy(p, line), nil
}

func TestNDJSONStreamsBatchesBeforeTheInputEnds(t *testing.T) {
	stop := errors.New("stop")
	var first *Batch
	rd := &reader{
		batchSize: 100,
		emit:      func(b *Batch) error { first = b; return stop },
		fail:      func(f Failure) { t.Errorf("unexpected failure %v", f) },
	}
	err := rd.ndjson(context.Background(), "endless.ndjson", &endless{}, &countingReader{r: io.MultiReader()})
	if !errors.Is(err, stop) {
		t.Fatalf("got %v, want the emit error after the first batch", err)
	}
	if first == nil || first.Resources != 100 {
		t.Fatalf("first batch: got %+v, want 100 resources", first)
	}
}

const transaction = `{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
    {"resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:1"}}, "request": {"method": "POST", "url": "Observation"}}
  ]
}`

func TestTransactionBundlesAreSentExactlyAsRead(t *testing.T) {
	for _, name := range []string{"t.json", "t.json.gz"} {
		batches, fails := readAll(t, 1, write(t, t.TempDir(), name, transaction))
		if len(batches) != 1 || len(fails) != 0 {
			t.Fatalf("%s: got %d batches and failures %v, want 1 batch", name, len(batches), fails)
		}
		b := batches[0]
		if string(b.Body("transaction")) != transaction || string(b.Body("batch")) != transaction {
			t.Errorf("%s: body changed:\n%s", name, b.Body("transaction"))
		}
		if b.Resources != 2 {
			t.Errorf("%s: got %d resources, want 2", name, b.Resources)
		}
	}
}

func TestCollectionBundlesBecomeOneTransaction(t *testing.T) {
	collection := `{"resourceType":"Bundle","type":"searchset","entry":[
	  {"fullUrl":"http://other/fhir/Patient/a","resource":{"resourceType":"Patient","id":"a"},"search":{"mode":"match"}},
	  {"fullUrl":"urn:uuid:2","resource":{"resourceType":"Observation","subject":{"reference":"urn:uuid:1"}}},
	  {"resource":{"resourceType":"OperationOutcome","issue":[]},"search":{"mode":"outcome"}},
	  {"fullUrl":"urn:uuid:3"}
	]}`
	batches, fails := readAll(t, 1, write(t, t.TempDir(), "s.json", collection))
	if len(batches) != 1 || len(fails) != 0 {
		t.Fatalf("got %d batches and failures %v, want 1 batch (the bundle is not split at --batch)", len(batches), fails)
	}
	es := entries(t, batches[0])
	var got []string
	for _, e := range es {
		got = append(got, request(e))
	}
	if want := []string{"PUT Patient/a", "POST Observation"}; !slices.Equal(got, want) {
		t.Errorf("requests: got %q, want %q", got, want)
	}
	if _, ok := es[0]["fullUrl"]; ok {
		t.Errorf("an absolute fullUrl of another server was kept: %v", es[0]["fullUrl"])
	}
	if es[1]["fullUrl"] != "urn:uuid:2" {
		t.Errorf("fullUrl: got %v, want the urn:uuid kept for references", es[1]["fullUrl"])
	}
	if !slices.Equal(batches[0].Where, []string{"entry 0", "entry 1"}) {
		t.Errorf("locations: got %q", batches[0].Where)
	}
}

func TestASingleResourceFileIsATransactionOfOne(t *testing.T) {
	batches, _ := readAll(t, 10, write(t, t.TempDir(), "p.json", `{"resourceType":"Patient","id":"x"}`))
	if len(batches) != 1 || batches[0].Resources != 1 {
		t.Fatalf("got %+v, want one batch of one resource", batches)
	}
	if got := request(entries(t, batches[0])[0]); got != "PUT Patient/x" {
		t.Errorf("got %q, want PUT Patient/x", got)
	}
}

func TestAFileThatIsNotJSONIsReportedAsAFailure(t *testing.T) {
	_, fails := readAll(t, 10, write(t, t.TempDir(), "bad.json", `{"resourceType":`))
	if len(fails) != 1 || fails[0].Entry != "" || !strings.Contains(fails[0].Reason, "not a FHIR JSON resource") {
		t.Errorf("got %v, want one whole-file failure", fails)
	}
}

func TestSummaryListsEachFailureWithItsLocationAndReason(t *testing.T) {
	s := &Summary{Files: 2, Loaded: 10, Failed: 3, Elapsed: 2e9, Failures: sortedFailures([]Failure{
		{File: "b.ndjson", Entry: "line 10", Resources: 1, Reason: "HTTP 400: unknown element (at Patient.foo)"},
		{File: "b.ndjson", Entry: "line 9", Resources: 1, Reason: "not a JSON object"},
		{File: "a.json", Resources: 1, Reason: "HTTP 422: invalid NHS number"},
	})}
	var buf bytes.Buffer
	s.Print(&buf)
	want := `loaded 10 resources from 2 files in 2s (5 resources/s)
failed 3 resources:
  a.json: HTTP 422: invalid NHS number
  b.ndjson line 9: not a JSON object
  b.ndjson line 10: HTTP 400: unknown element (at Patient.foo)
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	if s.Err() == nil {
		t.Error("a summary with failures must give an error (non-zero exit)")
	}
	if (&Summary{Loaded: 1}).Err() != nil {
		t.Error("a summary without failures must give no error")
	}
}
