package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/ingest"
)

// runImport is `sharedcare import`: load FHIR bundles and NDJSON into a FHIR
// server over HTTP (--url) or straight into a local store (--data).
func runImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sharedcare import --url URL --token TOKEN [flags] PATH...
       sharedcare import --data DIR [--db URL] [flags] PATH...
       sharedcare import --per-organisation --nodes FILE [--token T] [flags] REGION
       sharedcare import --per-organisation --data ROOT [flags] REGION

Loads FHIR R4 bundles (.json) and NDJSON (.ndjson), plain or gzipped (.gz);
directories are walked in lexical order. Transaction and batch bundles are
sent as they are; NDJSON and other bundles are grouped into transactions
(PUT Type/id for resources with an id, so a rerun does not duplicate).

With --per-organisation, REGION is a folder written by "sharedcare generate":
each organisation's folder (named by its ODS code) goes to that
organisation's own node: the node listed for it in the nodes file (CSV
"ods,url[,token]"), or, with --data, a separate SQLite store ROOT/<ODS>.

flags:
`)
		fs.PrintDefaults()
	}
	var (
		baseURL = fs.String("url", "", "FHIR base URL of the target server, e.g. http://127.0.0.1:8080/fhir")
		token   = fs.String("token", os.Getenv("SHAREDCARE_TOKEN"), "bearer token for --url (default $SHAREDCARE_TOKEN)")
		dataDir = fs.String("data", "", "load into the local store in this data directory instead of over HTTP")
		dbURL   = fs.String("db", os.Getenv("SHAREDCARE_DB"), "with --data: PostgreSQL URL of the store (default $SHAREDCARE_DB; empty for SQLite in --data)")
		workers = fs.Int("workers", 4, "bundles in flight at once")
		batch   = fs.Int("batch", 500, "resources per transaction when grouping NDJSON and non-transaction bundles")
		lenient = fs.Bool("lenient", false, "accept unknown elements, dropping them with a warning (Prefer: handling=lenient)")
		gz      = fs.Bool("gzip", false, "with --url: gzip request bodies")
		retries = fs.Int("retries", 6, "with --url: retries of a bundle after 429, 503 or a connection error (0 for none)")
		timeout = fs.Duration("timeout", 5*time.Minute, "with --url: time allowed for one bundle")
		quiet   = fs.Bool("quiet", false, "no progress bar")
		perOrg  = fs.Bool("per-organisation", false, "load each organisation's folder of a generated region into its own node")
		nodes   = fs.String("nodes", "", "with --per-organisation: CSV file ods,url[,token] naming each organisation's node")
		org     = fs.String("org", "", "with --data: the ODS code of the organisation whose records these are, stamped as meta.source on resources that carry none (the access model shares data by it; with --per-organisation each folder's own code is used)")
	)
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		fs.Usage()
		return fhir.Invalid("", "no PATH given")
	}
	if *workers < 1 || *batch < 1 {
		return fhir.Invalid("", "--workers and --batch must be at least 1")
	}
	opt := ingest.Options{Workers: *workers, BatchSize: *batch}
	if !*quiet && term.IsTerminal(int(os.Stderr.Fd())) {
		opt.Progress = os.Stderr
	}

	if *perOrg {
		return importRegion(ctx, paths, *nodes, *token, *dataDir, *dbURL, *lenient, *gz, *retries, *timeout, *workers, opt)
	}
	if *nodes != "" {
		return fhir.Invalid("", "--nodes goes with --per-organisation")
	}
	if (*baseURL == "") == (*dataDir == "") {
		return fhir.Invalid("", "give exactly one of --url (a FHIR server) or --data (a local store)")
	}
	var sink ingest.Sink
	if *baseURL != "" {
		r := *retries
		if r == 0 {
			r = -1 // HTTPOptions uses 0 for its default
		}
		h, err := ingest.NewHTTP(*baseURL, ingest.HTTPOptions{
			Token: *token, Lenient: *lenient, Gzip: *gz, Retries: r, Timeout: *timeout, Conns: *workers,
		})
		if err != nil {
			return err
		}
		defer h.Close()
		sink = h
	} else {
		source := ""
		if *org != "" {
			if !directory.ValidODS(*org) {
				return fhir.Invalid("", "--org %q is not an ODS code", *org)
			}
			source = access.Source(*org)
		}
		l, err := ingest.OpenLocal(ctx, *dataDir, *dbURL, *lenient, source)
		if err != nil {
			return err
		}
		defer l.Close()
		sink = l
	}
	sum, err := ingest.Run(ctx, sink, paths, opt)
	sum.Print(os.Stdout)
	if err != nil {
		return err
	}
	if l, ok := sink.(*ingest.Local); ok {
		if err := l.Analyze(ctx); err != nil {
			return fmt.Errorf("analyze the store after loading: %w", err)
		}
	}
	return sum.Err()
}

// importRegion is import --per-organisation: one node per organisation of a
// generated region, over HTTP (--nodes) or as local SQLite stores (--data).
func importRegion(ctx context.Context, paths []string, nodesFile, token, root, dbURL string, lenient, gz bool, retries int, timeout time.Duration, workers int, opt ingest.Options) error {
	if len(paths) != 1 {
		return fhir.Invalid("", "--per-organisation takes one region folder")
	}
	if (nodesFile == "") == (root == "") {
		return fhir.Invalid("", "--per-organisation needs exactly one of --nodes (a node per organisation) or --data (a store per organisation)")
	}
	if dbURL != "" {
		return fhir.Invalid("", "--per-organisation keeps one SQLite store per organisation under --data; --db does not apply")
	}
	region := paths[0]
	codes, err := ingest.Organisations(region)
	if err != nil {
		return err
	}
	var open ingest.SinkFor
	if nodesFile != "" {
		f, err := os.Open(nodesFile)
		if err != nil {
			return err
		}
		nodes, err := ingest.ReadNodes(f)
		f.Close()
		if err != nil {
			return err
		}
		for _, ods := range codes {
			if _, ok := nodes[ods]; !ok {
				return fhir.Invalid("", "%s lists no node for organisation %s", nodesFile, ods)
			}
		}
		open = func(ctx context.Context, ods string) (ingest.Sink, func() error, error) {
			n := nodes[ods]
			tok := n.Token
			if tok == "" {
				tok = token
			}
			if retries == 0 {
				retries = -1 // HTTPOptions uses 0 for its default
			}
			h, err := ingest.NewHTTP(n.URL, ingest.HTTPOptions{Token: tok, Lenient: lenient, Gzip: gz, Retries: retries, Timeout: timeout, Conns: workers})
			if err != nil {
				return nil, nil, err
			}
			return h, h.Close, nil
		}
	} else {
		open = func(ctx context.Context, ods string) (ingest.Sink, func() error, error) {
			l, err := ingest.OpenLocal(ctx, filepath.Join(root, ods), "", lenient, access.Source(ods))
			if err != nil {
				return nil, nil, err
			}
			return l, l.Close, nil
		}
	}
	sums, err := ingest.RunRegion(ctx, region, codes, open, opt)
	ingest.PrintRegion(os.Stdout, sums)
	if err != nil {
		return err
	}
	for _, s := range sums {
		if err := s.Err(); err != nil {
			return err
		}
	}
	return nil
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments (`import data/ --lenient` as well as
// `import --lenient data/`), returning the positional ones in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, fhir.Invalid("", "%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}
