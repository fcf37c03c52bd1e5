package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Files expands the command-line paths into the input files, in a
// deterministic order: arguments in the order given, each directory walked in
// lexical order. A directory contributes the files named *.json, *.ndjson,
// *.json.gz and *.ndjson.gz (other files, such as a LICENSE beside the data,
// and hidden entries are skipped); a file named explicitly must have one of
// those extensions.
func Files(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fhir.Invalid("", "cannot read %v", err)
		}
		if !info.IsDir() {
			if formatOf(p) == "" {
				return nil, fhir.Invalid("", "%s: not a FHIR input file (want .json, .ndjson, .json.gz or .ndjson.gz)", p)
			}
			out = append(out, p)
			continue
		}
		// WalkDir visits entries in lexical order, which makes the load order
		// (and so server-assigned ids and history order) reproducible.
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && d.Type().IsRegular() && formatOf(path) != "" {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, fhir.Invalid("", "cannot walk %s: %v", p, err)
		}
	}
	return out, nil
}

// formatOf is "bundle" for JSON files, "ndjson" for NDJSON, "" otherwise.
func formatOf(path string) string {
	name := strings.TrimSuffix(strings.ToLower(path), ".gz")
	switch {
	case strings.HasSuffix(name, ".ndjson"):
		return "ndjson"
	case strings.HasSuffix(name, ".json"):
		return "bundle"
	}
	return ""
}

// Batch is one unit of work for a sink: either a batch or transaction Bundle
// read from a file and sent unchanged (Raw), or resources grouped into a new
// transaction (Entries).
type Batch struct {
	File string
	// Raw is a Bundle of type transaction or batch exactly as read.
	Raw []byte
	// Entries are Bundle.entry objects (encoded JSON) to send as one
	// transaction; Where[i] locates Entries[i] in File ("line 17", "entry 3").
	Entries [][]byte
	Where   []string
	Types   []string // Types[i] is the resourceType of Entries[i]
	// Resources is the number of resources the batch carries.
	Resources int
	// Bytes is how much of the input (as stored, so compressed for .gz) this
	// batch accounts for; it drives the progress bar.
	Bytes int64
}

// Body encodes the batch as a Bundle of the given type ("transaction" or
// "batch"). A raw bundle is returned unchanged whatever the type.
func (b *Batch) Body(typ string) []byte {
	if b.Raw != nil {
		return b.Raw
	}
	n := 64
	for _, e := range b.Entries {
		n += len(e) + 1
	}
	buf := make([]byte, 0, n)
	buf = append(buf, `{"resourceType":"Bundle","type":"`...)
	buf = append(buf, typ...)
	buf = append(buf, `","entry":[`...)
	for i, e := range b.Entries {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, e...)
	}
	return append(buf, "]}"...)
}

// reader turns input files into batches. Problems with single resources
// (a line that is not JSON, a resource without resourceType) are reported
// through fail and do not stop the file.
type reader struct {
	batchSize int
	emit      func(*Batch) error
	fail      func(Failure)
}

// typePattern is the shape of an R4 resource type name; it guards the URL
// built from it (the server still decides whether the type exists).
var typePattern = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

// head is the part of a resource the reader needs to address it.
type head struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

// countingReader counts the bytes read through it, so progress can follow
// the file as stored (compressed) rather than the decoded stream.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// file reads one input file into batches.
func (rd *reader) file(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	var r io.Reader = bufio.NewReaderSize(cr, 256<<10)
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("not gzip: %w", err)
		}
		defer gz.Close()
		r = gz
	}
	if formatOf(path) == "ndjson" {
		return rd.ndjson(ctx, path, r, cr)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return rd.bundle(path, data, cr.n)
}

// ndjson streams one resource per line, grouping batchSize resources into a
// transaction. Only one batch is held in memory per reader.
func (rd *reader) ndjson(ctx context.Context, path string, r io.Reader, cr *countingReader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var (
		b        = &Batch{File: path}
		lineNo   int
		reported int64
	)
	flush := func() error {
		b.Bytes = cr.n - reported
		reported = cr.n
		if len(b.Entries) == 0 && b.Bytes == 0 {
			return nil
		}
		err := rd.emit(b)
		b = &Batch{File: path}
		return err
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			where := "line " + strconv.Itoa(lineNo)
			if entry, typ, ok := rd.entry(path, where, bytes.TrimSpace(line), ""); ok {
				b.Entries = append(b.Entries, entry)
				b.Where = append(b.Where, where)
				b.Types = append(b.Types, typ)
				b.Resources++
				if len(b.Entries) >= rd.batchSize {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return flush()
}

// entry wraps one resource as a transaction entry: PUT Type/id when it has an
// id, so ids are kept and a rerun is idempotent, POST Type otherwise. fullUrl
// is kept only when it is a urn: (a bundle-local name that other resources
// in the same bundle may reference); ok is false for a blank line or a
// resource reported as failed.
func (rd *reader) entry(path, where string, res []byte, fullURL string) ([]byte, string, bool) {
	if len(res) == 0 {
		return nil, "", false
	}
	var h head
	if err := json.Unmarshal(res, &h); err != nil {
		rd.fail(Failure{File: path, Entry: where, Resources: 1, Reason: "not a JSON object: " + err.Error()})
		return nil, "", false
	}
	if !typePattern.MatchString(h.ResourceType) {
		rd.fail(Failure{File: path, Entry: where, Resources: 1, Reason: fmt.Sprintf("resourceType %q is not a resource type name", h.ResourceType)})
		return nil, "", false
	}
	if h.ID != "" && !fhir.ValidID(h.ID) {
		rd.fail(Failure{File: path, Entry: where, Resources: 1, Reason: fmt.Sprintf("%s.id %q is not a valid id", h.ResourceType, h.ID)})
		return nil, "", false
	}
	e := make([]byte, 0, len(res)+len(fullURL)+100)
	e = append(e, '{')
	if strings.HasPrefix(fullURL, "urn:") {
		e = append(e, `"fullUrl":`...)
		e = strconv.AppendQuote(e, fullURL)
		e = append(e, ',')
	}
	e = append(e, `"resource":`...)
	e = append(e, res...)
	if h.ID != "" {
		e = append(e, `,"request":{"method":"PUT","url":"`...)
		e = append(e, h.ResourceType...)
		e = append(e, '/')
		e = append(e, h.ID...)
	} else {
		e = append(e, `,"request":{"method":"POST","url":"`...)
		e = append(e, h.ResourceType...)
	}
	return append(e, `"}}`...), h.ResourceType, true
}

// bundleHead is what is needed to route a JSON file, decoded when
// scanBundle cannot read it: entries decode into empty structs, which counts
// them without copying them.
type bundleHead struct {
	ResourceType string     `json:"resourceType"`
	Type         string     `json:"type"`
	Entry        []struct{} `json:"entry"`
}

// bundleEntries is a non-transaction bundle's entries, decoded to regroup them.
type bundleEntries struct {
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

// bundle routes one JSON file. Transaction and batch bundles are sent exactly
// as read (so a Synthea export is loaded as its author meant it, urn:uuid
// references and all); any other bundle (collection, searchset, history,
// document) has its resources regrouped into one transaction, not split, so
// that urn: references between its entries still resolve; a single resource
// becomes a transaction of one.
func (rd *reader) bundle(path string, data []byte, size int64) error {
	var h bundleHead
	rt, typ, n, ok := scanBundle(data)
	if ok {
		h.ResourceType, h.Type = rt, typ
	} else if err := json.Unmarshal(data, &h); err != nil {
		rd.fail(Failure{File: path, Reason: "not a FHIR JSON resource: " + err.Error()})
		return rd.emit(&Batch{File: path, Bytes: size})
	} else {
		n = len(h.Entry)
	}
	if h.ResourceType != "Bundle" {
		b := &Batch{File: path, Bytes: size}
		if e, typ, ok := rd.entry(path, "", bytes.TrimSpace(data), ""); ok {
			b.Entries, b.Where, b.Types, b.Resources = [][]byte{e}, []string{""}, []string{typ}, 1
		}
		return rd.emit(b)
	}
	if h.Type == "transaction" || h.Type == "batch" {
		return rd.emit(&Batch{File: path, Raw: data, Resources: n, Bytes: size})
	}
	var be bundleEntries
	if err := json.Unmarshal(data, &be); err != nil {
		rd.fail(Failure{File: path, Reason: err.Error()})
		return rd.emit(&Batch{File: path, Bytes: size})
	}
	b := &Batch{File: path, Bytes: size}
	for i, e := range be.Entry {
		// A searchset's OperationOutcome entries describe the search, they are
		// not data.
		if len(e.Resource) == 0 || (e.Search != nil && e.Search.Mode == "outcome") {
			continue
		}
		where := "entry " + strconv.Itoa(i)
		if entry, typ, ok := rd.entry(path, where, e.Resource, e.FullURL); ok {
			b.Entries = append(b.Entries, entry)
			b.Where = append(b.Where, where)
			b.Types = append(b.Types, typ)
			b.Resources++
		}
	}
	return rd.emit(b)
}

// sortedFailures orders failures by file and position, so the summary reads
// in input order whichever worker finished first.
func sortedFailures(fs []Failure) []Failure {
	out := slices.Clone(fs)
	slices.SortStableFunc(out, func(a, b Failure) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return compareWhere(a.Entry, b.Entry)
	})
	return out
}

// compareWhere orders "line 9" before "line 10".
func compareWhere(a, b string) int {
	ai, aerr := strconv.Atoi(a[strings.LastIndexByte(a, ' ')+1:])
	bi, berr := strconv.Atoi(b[strings.LastIndexByte(b, ' ')+1:])
	if aerr == nil && berr == nil && a[:strings.LastIndexByte(a, ' ')+1] == b[:strings.LastIndexByte(b, ' ')+1] {
		return ai - bi
	}
	return strings.Compare(a, b)
}
