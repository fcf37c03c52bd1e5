package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/ingest"
	"github.com/sharedcare/sharedcare/internal/mpi"
)

// runMPI is `sharedcare mpi`: offline use of the master patient index.
func runMPI(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: sharedcare mpi link --in FILE... --out links.csv [--truth FILE] [--review FILE] [--verbose]")
		if len(args) == 0 {
			return usageError{errors.New("a subcommand is required (link)")}
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "link":
		return runMPILink(ctx, args[1:], os.Stdout)
	}
	return usageError{fmt.Errorf("unknown subcommand %q (want link)", args[0])}
}

// inFlags collects repeated --in values.
type inFlags []string

func (f *inFlags) String() string     { return strings.Join(*f, ",") }
func (f *inFlags) Set(v string) error { *f = append(*f, v); return nil }

// runMPILink links files of Patients into persons (what an organisation
// joining the shared record needs first) and writes patient,person rows.
func runMPILink(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mpi link", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sharedcare mpi link --in FILE... --out links.csv [--truth FILE] [--review FILE]

Links the Patients of FHIR files (NDJSON, Bundles or single resources; a
directory is walked for *.json and *.ndjson, gzipped or not) into persons:
m/u probabilities estimated by EM from the files themselves, blocking,
Fellegi-Sunter scoring, the NHS number rules. Writes one patient,person row
per input Patient id (the person is the smallest Patient id of its cluster).
With --truth (CSV with patient and person columns, as a generated region's
truth.csv) it prints pairwise precision, recall and F1.

flags:
`)
		fs.PrintDefaults()
	}
	var in inFlags
	fs.Var(&in, "in", "input file or directory (repeatable; further arguments are inputs too)")
	var (
		out     = fs.String("out", "", "output CSV of patient,person rows")
		truth   = fs.String("truth", "", "CSV with patient and person columns to measure against")
		review  = fs.String("review", "", "output CSV of the pairs for review (between the thresholds, conflicts)")
		verbose = fs.Bool("verbose", false, "print the trained model")
	)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	in = append(in, fs.Args()...)
	if len(in) == 0 {
		return usageError{errors.New("--in is required")}
	}
	if *out == "" {
		return usageError{errors.New("--out is required")}
	}
	files, err := ingest.Files(in)
	if err != nil {
		return usageError{err}
	}
	start := time.Now()
	var recs []mpi.Record
	seen := map[string]string{}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := readPatients(f, func(id string, p fhir.Object) error {
			if prev, dup := seen[id]; dup {
				return fmt.Errorf("Patient id %q appears twice (%s and %s): ids must be unique across the inputs", id, prev, f)
			}
			seen[id] = f
			recs = append(recs, mpi.FromPatient(id, p))
			return nil
		}); err != nil {
			return err
		}
	}
	if len(recs) == 0 {
		return fmt.Errorf("no Patient resources in %s", strings.Join(in, ", "))
	}
	read := time.Since(start)
	m := mpi.Train(recs)
	l := mpi.Link(m, recs)
	elapsed := time.Since(start)
	if err := writeLinks(*out, recs, l); err != nil {
		return err
	}
	if *review != "" {
		if err := writeReview(*review, l); err != nil {
			return err
		}
	}
	persons := map[string]bool{}
	for _, p := range l.Person {
		persons[p] = true
	}
	conflicts := 0
	for _, p := range l.Review {
		if p.Conflict {
			conflicts++
		}
	}
	fmt.Fprintf(stdout, "%d Patients from %d files -> %d persons; %d links, %d pairs for review (%d conflicts); read %s, linked %s\n",
		len(recs), len(files), len(persons), len(l.Links), len(l.Review), conflicts, read.Round(time.Millisecond), (elapsed - read).Round(time.Millisecond))
	if *verbose {
		fmt.Fprint(stdout, m)
	}
	if *truth != "" {
		t, err := readTruth(*truth)
		if err != nil {
			return err
		}
		q := mpi.Evaluate(l.Person, t)
		fmt.Fprintf(stdout, "precision %.5f  recall %.5f  F1 %.5f  (true pairs %d, linked pairs %d, correct %d)\n",
			q.Precision, q.Recall, q.F1, q.TruePairs, q.FoundPairs, q.Correct)
	}
	return nil
}

// readPatients calls fn for every Patient in a file: NDJSON lines, the
// entries of a Bundle, or a single resource.
func readPatients(path string, fn func(id string, p fhir.Object) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		defer gz.Close()
		r = gz
	}
	patient := func(where string, o fhir.Object) error {
		if fhir.ResourceType(o) != "Patient" {
			return nil
		}
		id := fhir.ID(o)
		if id == "" {
			return fmt.Errorf("%s: a Patient without an id cannot be written to the links file", where)
		}
		return fn(id, o)
	}
	name := strings.TrimSuffix(strings.ToLower(path), ".gz")
	if strings.HasSuffix(name, ".ndjson") {
		br := bufio.NewReaderSize(r, 1<<20)
		for n := 1; ; n++ {
			line, err := br.ReadBytes('\n')
			// Only lines that can be a Patient are parsed: other resources
			// refer to "Patient/x" but never hold the string "Patient" alone.
			if t := bytes.TrimSpace(line); len(t) > 0 && bytes.Contains(t, []byte(`"Patient"`)) {
				o, perr := fhir.ParseObject(t, 64)
				if perr != nil {
					return fmt.Errorf("%s:%d: %v", path, n, perr)
				}
				if err := patient(path+":"+strconv.Itoa(n), o); err != nil {
					return err
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
		}
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	o, err := fhir.ParseObject(data, 64)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if fhir.ResourceType(o) != "Bundle" {
		return patient(path, o)
	}
	entries, _ := o["entry"].([]any)
	for i, e := range entries {
		eo, _ := e.(fhir.Object)
		if res, ok := eo["resource"].(fhir.Object); ok {
			if err := patient(fmt.Sprintf("%s: entry[%d]", path, i), res); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeLinks(path string, recs []mpi.Record, l mpi.Linkage) error {
	refs := make([]string, len(recs))
	for i, r := range recs {
		refs[i] = r.Ref
	}
	sort.Strings(refs)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"patient", "person"})
	for _, ref := range refs {
		w.Write([]string{ref, l.Person[ref]})
	}
	w.Flush()
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func writeReview(path string, l mpi.Linkage) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"patient", "candidate", "score", "probability", "grade", "conflict", "reason"})
	for _, p := range l.Review {
		w.Write([]string{p.A, p.Ref, strconv.FormatFloat(p.Score, 'f', 2, 64), strconv.FormatFloat(p.Prob, 'f', 4, 64),
			string(p.Grade), strconv.FormatBool(p.Conflict), strings.Join(p.Reason, " ")})
	}
	w.Flush()
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// readTruth reads a CSV with a header naming "patient" and "person" columns
// (a region's truth.csv: organisation,patient,person).
func readTruth(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	pi, qi := -1, -1
	for i, h := range head {
		switch strings.TrimSpace(strings.ToLower(h)) {
		case "patient":
			pi = i
		case "person":
			qi = i
		}
	}
	if pi < 0 || qi < 0 {
		return nil, usageError{fmt.Errorf("%s: the header must name a patient and a person column", path)}
	}
	truth := map[string]string{}
	for {
		row, err := r.Read()
		if err == io.EOF {
			return truth, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if pi < len(row) && qi < len(row) {
			truth[row[pi]] = row[qi]
		}
	}
}
