// Package ingest loads FHIR data into sharedcare, or into any FHIR R4 server:
// it reads bundles and NDJSON files (plain or gzipped, directories walked in
// a fixed order), streams them into transaction bundles and hands those to a
// Sink from several workers, with progress and a summary of what failed and
// why.
//
// Two sinks exist: HTTP, which posts bundles to a server's base URL like any
// FHIR client, and Local, which calls the engine in-process on a store
// opened directly (no HTTP, no response encoding). The command
// `sharedcare import` (cmd/sharedcare/import.go) only parses flags and wires
// a sink to Run; the reading, grouping, retrying and reporting live here, so
// that loading a region into one node per organisation is a loop over Run
// with one sink per node.
package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Sink is where batches go: a FHIR server over HTTP or the local engine.
type Sink interface {
	// Bundle submits a transaction or batch Bundle. It returns the response
	// Bundle when want is true (a sink may skip decoding it otherwise), or a
	// *fhir.Error whose issues say why the whole bundle was refused.
	Bundle(ctx context.Context, body []byte, want bool) (fhir.Object, error)
}

// Options are the switches of one Run.
type Options struct {
	Workers   int       // concurrent bundles in flight; 0 means 4
	BatchSize int       // resources per transaction built from NDJSON; 0 means 500
	Progress  io.Writer // where the progress bar goes; nil for none
}

// Failure is one resource, or one whole bundle, that did not load.
type Failure struct {
	File      string
	Entry     string // "line 17", "entry 3"; "" when the whole file failed
	Resources int    // how many resources this failure accounts for
	Reason    string // the server's diagnostics, or the reader's
}

// String renders the failure as one summary line.
func (f Failure) String() string {
	where := f.File
	if f.Entry != "" {
		where += " " + f.Entry
	}
	if f.Resources > 1 {
		where += fmt.Sprintf(" (%d resources)", f.Resources)
	}
	return where + ": " + f.Reason
}

// Summary is the outcome of a Run.
type Summary struct {
	Files    int
	Loaded   int // resources the sink accepted
	Failed   int // resources that did not load
	Elapsed  time.Duration
	Failures []Failure // sorted by file and entry
}

// Rate is loaded resources per second.
func (s *Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Loaded) / s.Elapsed.Seconds()
}

// maxListed bounds the failures printed, so a wholly wrong feed does not
// bury the totals.
const maxListed = 100

// Print writes the human summary: totals, rate, then each failure.
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "loaded %d resources from %d files in %s (%.0f resources/s)\n",
		s.Loaded, s.Files, s.Elapsed.Round(time.Millisecond), s.Rate())
	if s.Failed == 0 && len(s.Failures) == 0 {
		return
	}
	fmt.Fprintf(w, "failed %d resources:\n", s.Failed)
	for i, f := range s.Failures {
		if i == maxListed {
			fmt.Fprintf(w, "  ... and %d more failures\n", len(s.Failures)-maxListed)
			break
		}
		fmt.Fprintf(w, "  %s\n", f)
	}
}

// Err is nil when everything loaded, otherwise an error saying how much failed;
// the command turns it into a non-zero exit.
func (s *Summary) Err() error {
	if s.Failed == 0 && len(s.Failures) == 0 {
		return nil
	}
	return fhir.Errorf(fhir.EUnprocessable, "", "%d resources failed to load", s.Failed)
}

// Run reads every file under paths and sends it to sink. It returns the
// summary (also on error, with what was done so far) and an error only when
// the run could not go on: unreadable arguments, a sink that refuses
// credentials or stays unreachable, or ctx cancelled. Per-resource failures
// are in the summary, not the error.
func Run(ctx context.Context, sink Sink, paths []string, opt Options) (*Summary, error) {
	opt.Workers = cmp.Or(opt.Workers, 4)
	opt.BatchSize = cmp.Or(opt.BatchSize, 500)
	start := time.Now()
	sum := &Summary{}
	files, err := Files(paths)
	if err != nil {
		return sum, err
	}
	sum.Files = len(files)
	var total int64
	for _, f := range files {
		if info, err := os.Stat(f); err == nil {
			total += info.Size()
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu  sync.Mutex
		bar = newProgress(opt.Progress, total)
	)
	record := func(loaded int, bytes int64, fs ...Failure) {
		mu.Lock()
		defer mu.Unlock()
		sum.Loaded += loaded
		for _, f := range fs {
			sum.Failed += f.Resources
			sum.Failures = append(sum.Failures, f)
		}
		bar.add(bytes, sum.Loaded, sum.Failed)
	}

	batches := make(chan *Batch, opt.Workers)
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Go(func() {
			for b := range batches {
				if ctx.Err() != nil {
					continue // the run is stopping: drain without sending
				}
				loaded, fails, err := send(ctx, sink, b)
				record(loaded, b.Bytes, fails...)
				if err != nil {
					cancel(err)
				}
			}
		})
	}

	rd := &reader{
		batchSize: opt.BatchSize,
		emit: func(b *Batch) error {
			if b.Resources == 0 {
				record(0, b.Bytes)
				return nil
			}
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		},
		fail: func(f Failure) { record(0, 0, f) },
	}
	for _, f := range files {
		if err := rd.file(ctx, f); err != nil {
			if ctx.Err() != nil {
				break
			}
			record(0, 0, Failure{File: f, Reason: "cannot read: " + err.Error()})
		}
	}
	close(batches)
	wg.Wait()
	bar.finish()
	sum.Elapsed = time.Since(start)
	sum.Failures = sortedFailures(sum.Failures)
	if ctx.Err() != nil {
		return sum, context.Cause(ctx)
	}
	return sum, nil
}

// send delivers one batch. A grouped transaction that the server refuses for
// its content is resent as a batch bundle, so that one bad resource among
// 500 fails alone, with its own diagnostics, and the others load. A bundle
// read from a file is never split: its author made it one transaction.
// The error is non-nil only for failures that doom the whole run (see fatal).
func send(ctx context.Context, sink Sink, b *Batch) (loaded int, fails []Failure, err error) {
	_, err = sink.Bundle(ctx, b.Body("transaction"), false)
	if err == nil {
		return b.Resources, nil, nil
	}
	if fatal(ctx, err) {
		return 0, []Failure{{File: b.File, Entry: b.where(), Resources: b.Resources, Reason: reason(err)}}, err
	}
	if b.Raw != nil || len(b.Entries) < 2 || !contentError(err) {
		return 0, []Failure{{File: b.File, Entry: b.where(), Resources: b.Resources, Reason: reason(err)}}, nil
	}
	resp, err := sink.Bundle(ctx, b.Body("batch"), true)
	if err != nil {
		return 0, []Failure{{File: b.File, Entry: b.where(), Resources: b.Resources, Reason: reason(err)}}, nil
	}
	entries, _ := resp["entry"].([]any)
	for i := range b.Entries {
		var e fhir.Object
		if i < len(entries) {
			e, _ = entries[i].(fhir.Object)
		}
		r, _ := e["response"].(fhir.Object)
		status, _ := r["status"].(string)
		if strings.HasPrefix(status, "2") {
			loaded++
			continue
		}
		why := "no response entry"
		if status != "" {
			why = status
		}
		if oo, ok := r["outcome"].(fhir.Object); ok {
			if d := outcomeText(oo); d != "" {
				why += ": " + inSource(d, i, b.Types[i])
			}
		}
		fails = append(fails, Failure{File: b.File, Entry: b.Where[i], Resources: 1, Reason: why})
	}
	return loaded, fails, nil
}

// inSource rewrites a diagnostic about entry i of a bundle the loader built
// in terms of the input the user knows: the server's "entry 3: " prefix goes
// (the failure already names the line) and "Bundle.entry[3].resource.x"
// becomes "Patient.x".
func inSource(d string, i int, typ string) string {
	n := strconv.Itoa(i)
	d = strings.TrimPrefix(d, "entry "+n+": ")
	return strings.ReplaceAll(d, "Bundle.entry["+n+"].resource", typ)
}

// where names the entries a grouped batch covers, for a failure of all of them.
func (b *Batch) where() string {
	if len(b.Where) == 0 || b.Where[0] == "" {
		return ""
	}
	if len(b.Where) == 1 {
		return b.Where[0]
	}
	return b.Where[0] + " to " + b.Where[len(b.Where)-1][strings.LastIndexByte(b.Where[len(b.Where)-1], ' ')+1:]
}

// fatal reports errors after which no other bundle can succeed either, so
// the run stops instead of failing every file the same way: refused
// credentials, or a server still unreachable after the retries.
func fatal(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	switch fhir.KindOf(err) {
	case fhir.EUnauthorized, fhir.EForbidden:
		return true
	}
	var u *unreachableError
	return errors.As(err, &u)
}

// contentError reports a refusal caused by what the bundle contains (4xx
// other than throttling), the case where resending entry by entry helps.
func contentError(err error) bool {
	switch fhir.KindOf(err) {
	case fhir.EInvalid, fhir.EUnprocessable, fhir.EConflict, fhir.EPreconditionFailed, fhir.ENotFound, fhir.EGone:
		return true
	}
	return false
}

// reason is the user-facing text of an error: every issue, with its location.
func reason(err error) string {
	var fe *fhir.Error
	if !errors.As(err, &fe) || len(fe.Issues) == 0 {
		return err.Error()
	}
	parts := make([]string, 0, len(fe.Issues))
	for _, is := range fe.Issues {
		parts = append(parts, issueText(is))
	}
	msg := strings.Join(parts, "; ")
	if st := statusText(fe); st != "" {
		msg = st + ": " + msg
	}
	return msg
}

func issueText(is fhir.Issue) string {
	s := is.Diagnostics
	if s == "" {
		s = is.Code
	}
	if is.Expression != "" {
		s += " (at " + is.Expression + ")"
	}
	return s
}

// outcomeText flattens an OperationOutcome's error issues to one line.
func outcomeText(oo fhir.Object) string {
	var parts []string
	for _, is := range issuesOf(oo) {
		if is.Severity == fhir.SeverityError || is.Severity == fhir.SeverityFatal {
			parts = append(parts, issueText(is))
		}
	}
	return strings.Join(parts, "; ")
}

// issuesOf reads the issues of an OperationOutcome.
func issuesOf(oo fhir.Object) []fhir.Issue {
	list, _ := oo["issue"].([]any)
	out := make([]fhir.Issue, 0, len(list))
	for _, v := range list {
		m, _ := v.(fhir.Object)
		if m == nil {
			continue
		}
		is := fhir.Issue{}
		s, _ := m["severity"].(string)
		is.Severity = fhir.Severity(s)
		is.Code, _ = m["code"].(string)
		is.Diagnostics, _ = m["diagnostics"].(string)
		if exprs, ok := m["expression"].([]any); ok && len(exprs) > 0 {
			is.Expression, _ = exprs[0].(string)
		}
		if is.Diagnostics == "" {
			if d, ok := m["details"].(fhir.Object); ok {
				is.Diagnostics, _ = d["text"].(string)
			}
		}
		out = append(out, is)
	}
	return out
}

// progress is the progress bar, or nothing when there is no terminal. The
// bar measures input bytes (known up front from file sizes, so the ETA is
// honest without a counting pass over the data) and describes resources
// loaded and their rate.
type progress struct {
	bar   *progressbar.ProgressBar
	start time.Time
}

func newProgress(w io.Writer, total int64) *progress {
	if w == nil {
		return &progress{}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription("0 resources"),
	)
	return &progress{bar: bar, start: time.Now()}
}

func (p *progress) add(bytes int64, loaded, failed int) {
	if p.bar == nil {
		return
	}
	rate := float64(loaded) / max(time.Since(p.start).Seconds(), 1e-3)
	desc := fmt.Sprintf("%d resources (%.0f/s)", loaded, rate)
	if failed > 0 {
		desc += fmt.Sprintf(", %d failed", failed)
	}
	p.bar.Describe(desc)
	_ = p.bar.Add64(bytes)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
