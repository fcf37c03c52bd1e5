package synth

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Format is the output layout.
type Format string

// The output formats: NDJSON, one file per organisation and resource type
// (<ODS>/<Type>.ndjson, the FHIR Bulk Data layout), or transaction bundles
// (<ODS>/bundle-NNNNN.json, PUT Type/id entries so a reload is idempotent).
const (
	NDJSON Format = "ndjson"
	Bundle Format = "bundle"
)

// Options are the switches of one generation.
type Options struct {
	People  int    // how many people (at most MaxPeople)
	Seed    uint64 // the seed: same People and Seed, same bytes
	Format  Format // NDJSON (default) or Bundle
	Workers int    // people generated in parallel; 0 = GOMAXPROCS
}

// Summary is what a generation wrote.
type Summary struct {
	People        int
	Organisations int
	Patients      int            // rows of truth.csv
	Resources     int            // every resource written, organisation resources included
	ByType        map[string]int // resources by type
	WrongNHS      int            // injected wrong NHS numbers
	KnownTo       map[int]int    // people by how many organisations know them
}

// Generator generates one region.
type Generator struct {
	seed   uint64
	people int
	region *Region
}

// New returns the generator for opt (the region is built at once; it is small).
func New(opt Options) *Generator {
	return &Generator{seed: opt.Seed, people: opt.People, region: NewRegion(opt.People, opt.Seed)}
}

// Region returns the organisations of the region.
func (g *Generator) Region() *Region { return g.region }

// Person generates person i and every organisation's records of them. It
// depends on (seed, i) only.
func (g *Generator) Person(i int) (*Person, []Rec, []TruthRow, []WrongNHS) {
	out := g.person(i)
	return out.p, out.recs, out.truth, out.wrong
}

func (g *Generator) person(i int) *personOut {
	rng := newRand(g.seed, uint64(i))
	p := newPerson(rng, g.region, g.seed, i)
	out := &personOut{p: p}
	e := &emitter{g: g, p: p, rng: rng, out: out, pats: map[int]*orgPat{}}
	e.history()
	return out
}

// batchSize is how many people are generated before they are written:
// large enough to keep every worker busy, small enough that memory does not
// depend on the number of people.
const batchSize = 64

// Generate writes the region for opt into dir (created if needed; it must
// be empty of a previous region, since files are appended to).
func Generate(ctx context.Context, dir string, opt Options) (*Summary, error) {
	if opt.People < 1 || opt.People > MaxPeople() {
		return nil, fhir.Invalid("", "people must be between 1 and %d", MaxPeople())
	}
	if opt.Format == "" {
		opt.Format = NDJSON
	}
	if opt.Format != NDJSON && opt.Format != Bundle {
		return nil, fhir.Invalid("", "format must be ndjson or bundle, not %q", opt.Format)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fhir.Internal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return nil, fhir.Internal(err)
	} else if len(entries) > 0 {
		return nil, fhir.Invalid("", "output directory %s is not empty", dir)
	}
	g := New(opt)
	w, err := newWriter(dir, opt.Format, g.region)
	if err != nil {
		return nil, err
	}
	sum := &Summary{People: opt.People, Organisations: len(g.region.Orgs), ByType: map[string]int{}, KnownTo: map[int]int{}}
	for _, o := range g.region.Orgs {
		for _, r := range orgResources(o) {
			if err := w.write(Rec{Org: o.Index, Type: r["resourceType"].(string), ID: r["id"].(string), JSON: fhir.Marshal(r)}, sum); err != nil {
				return nil, err
			}
		}
	}

	// Generation runs one batch ahead of writing: workers fill batch k+1
	// while the writer drains batch k, in index order.
	batches := make(chan []*personOut, 1)
	genErr := make(chan error, 1)
	go func() {
		defer close(batches)
		for start := 0; start < opt.People; start += batchSize {
			if err := ctx.Err(); err != nil {
				genErr <- err
				return
			}
			n := min(batchSize, opt.People-start)
			batch := make([]*personOut, n)
			var wg sync.WaitGroup
			next := make(chan int, n)
			for k := 0; k < n; k++ {
				next <- k
			}
			close(next)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range next {
						batch[k] = g.person(start + k)
					}
				}()
			}
			wg.Wait()
			batches <- batch
		}
		genErr <- nil
	}()
	var werr error
	for batch := range batches {
		if werr != nil {
			continue // drain so the generator can finish
		}
		for _, out := range batch {
			if werr = w.person(out, sum); werr != nil {
				break
			}
		}
	}
	if err := <-genErr; err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, werr
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	return sum, nil
}

// writer writes records into per-organisation files. Each file's pending
// bytes are buffered and appended (open, write, close) when the buffer is
// full, so at most one file handle is open at a time whatever the number of
// organisations and types; when all buffers together exceed maxPending they
// are all flushed and dropped, so memory does not grow with the number of
// organisations either (measured: peak RSS 129 MB at 100,000 people with
// per-file buffers only, dominated by ~1,000 files' buffers).
type writer struct {
	dir     string
	format  Format
	region  *Region
	bufs    map[string]*[]byte // path -> pending bytes
	pending int                // bytes in bufs
	entries []int              // bundle format: entries in each organisation's open bundle
	files   []int              // bundle format: bundles written per organisation
	truth   *bufio.Writer
	wrong   *bufio.Writer
	closers []*os.File
}

const (
	flushAt     = 32 << 10
	maxPending  = 8 << 20
	bundleLimit = 500 // entries per transaction bundle
)

func newWriter(dir string, f Format, reg *Region) (*writer, error) {
	w := &writer{dir: dir, format: f, region: reg, bufs: map[string]*[]byte{},
		entries: make([]int, len(reg.Orgs)), files: make([]int, len(reg.Orgs))}
	for _, o := range reg.Orgs {
		if err := os.MkdirAll(filepath.Join(dir, o.ODS), 0o755); err != nil {
			return nil, fhir.Internal(err)
		}
	}
	open := func(name, header string) (*bufio.Writer, error) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, fhir.Internal(err)
		}
		w.closers = append(w.closers, f)
		b := bufio.NewWriterSize(f, 64<<10)
		b.WriteString(header)
		return b, nil
	}
	var err error
	if w.truth, err = open("truth.csv", "organisation,patient,person\n"); err != nil {
		return nil, err
	}
	if w.wrong, err = open("wrong-nhs-numbers.csv", "organisation,patient,person,recorded,true\n"); err != nil {
		return nil, err
	}
	orgs, err := open("organisations.csv", "ods,type,name\n")
	if err != nil {
		return nil, err
	}
	for _, o := range reg.Orgs {
		fmt.Fprintf(orgs, "%s,%s,%s\n", o.ODS, o.Kind, csvField(o.Name))
	}
	if err := orgs.Flush(); err != nil {
		return nil, fhir.Internal(err)
	}
	return w, nil
}

func csvField(s string) string {
	for _, c := range s {
		if c == ',' || c == '"' || c == '\n' {
			return `"` + string(replaceQuotes(s)) + `"`
		}
	}
	return s
}

func replaceQuotes(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return b
}

func (w *writer) person(out *personOut, sum *Summary) error {
	for _, r := range out.recs {
		if err := w.write(r, sum); err != nil {
			return err
		}
	}
	for _, t := range out.truth {
		fmt.Fprintf(w.truth, "%s,%s,%s\n", t.ODS, t.Patient, t.Person)
	}
	for _, x := range out.wrong {
		fmt.Fprintf(w.wrong, "%s,%s,%s,%s,%s\n", x.ODS, x.Patient, x.Person, x.Recorded, x.True)
	}
	sum.Patients += len(out.truth)
	sum.WrongNHS += len(out.wrong)
	sum.KnownTo[out.orgs]++
	return nil
}

func (w *writer) write(r Rec, sum *Summary) error {
	if w.pending > maxPending {
		if err := w.flushAll(); err != nil {
			return err
		}
	}
	sum.Resources++
	sum.ByType[r.Type]++
	o := w.region.Orgs[r.Org]
	var path string
	var b *[]byte
	if w.format == NDJSON {
		path = filepath.Join(w.dir, o.ODS, r.Type+".ndjson")
		b = w.buf(path)
		*b = append(*b, r.JSON...)
		*b = append(*b, '\n')
		w.pending += len(r.JSON) + 1
	} else {
		path = w.bundlePath(o)
		b = w.buf(path)
		if w.entries[o.Index] == 0 {
			*b = append(*b, `{"resourceType":"Bundle","type":"transaction","entry":[`...)
		} else {
			*b = append(*b, ',')
		}
		*b = append(*b, `{"resource":`...)
		*b = append(*b, r.JSON...)
		*b = append(*b, `,"request":{"method":"PUT","url":"`...)
		*b = append(*b, r.Type...)
		*b = append(*b, '/')
		*b = append(*b, r.ID...)
		*b = append(*b, `"}}`...)
		w.pending += len(r.JSON) + 2*len(r.Type) + len(r.ID) + 64
		w.entries[o.Index]++
		if w.entries[o.Index] == bundleLimit {
			*b = append(*b, "]}\n"...)
			w.entries[o.Index] = 0
			w.files[o.Index]++
			return w.flush(path)
		}
	}
	if len(*b) >= flushAt {
		return w.flush(path)
	}
	return nil
}

func (w *writer) bundlePath(o *Org) string {
	return filepath.Join(w.dir, o.ODS, fmt.Sprintf("bundle-%05d.json", w.files[o.Index]+1))
}

func (w *writer) buf(path string) *[]byte {
	b, ok := w.bufs[path]
	if !ok {
		s := make([]byte, 0, 4096)
		b = &s
		w.bufs[path] = b
	}
	return b
}

func (w *writer) flush(path string) error {
	b := w.bufs[path]
	if b == nil || len(*b) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fhir.Internal(err)
	}
	if _, err := f.Write(*b); err != nil {
		f.Close()
		return fhir.Internal(err)
	}
	if err := f.Close(); err != nil {
		return fhir.Internal(err)
	}
	w.pending -= len(*b)
	if w.pending < 0 {
		w.pending = 0
	}
	delete(w.bufs, path) // the next write starts a small buffer again
	return nil
}

// flushAll appends every pending buffer (in path order, for no reason but
// tidiness: the bytes of each file do not depend on when it is flushed).
func (w *writer) flushAll() error {
	paths := make([]string, 0, len(w.bufs))
	for p := range w.bufs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := w.flush(p); err != nil {
			return err
		}
	}
	w.pending = 0
	return nil
}

func (w *writer) close() error {
	if w.format == Bundle {
		for _, o := range w.region.Orgs {
			if w.entries[o.Index] > 0 {
				b := w.buf(w.bundlePath(o))
				*b = append(*b, "]}\n"...)
				w.entries[o.Index] = 0
			}
		}
	}
	if err := w.flushAll(); err != nil {
		return err
	}
	for _, b := range []*bufio.Writer{w.truth, w.wrong} {
		if err := b.Flush(); err != nil {
			return fhir.Internal(err)
		}
	}
	for _, f := range w.closers {
		if err := f.Close(); err != nil {
			return fhir.Internal(err)
		}
	}
	return nil
}
