package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// runReindex is `sharedcare reindex`: rebuild every search index row from
// the stored resources, after an upgrade changed what is indexed.
func runReindex(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sharedcare reindex --data DIR [--db URL] [--base-url URL] [--batch N]

Rebuilds the search index rows of every current resource from its stored
JSON, in batches, printing progress. The server may keep running: writes
meanwhile index themselves. Give the base URL the server runs with, so that
absolute references to it are indexed as the local resources they name.

flags:
`)
		fs.PrintDefaults()
	}
	var (
		dataDir = fs.String("data", os.Getenv("SHAREDCARE_DATA"), "data directory of the store (default $SHAREDCARE_DATA)")
		dbURL   = fs.String("db", os.Getenv("SHAREDCARE_DB"), "PostgreSQL URL of the store (default $SHAREDCARE_DB; empty for SQLite in --data)")
		baseURL = fs.String("base-url", os.Getenv("SHAREDCARE_BASE_URL"), "absolute base URL of the FHIR API, as given to serve (default $SHAREDCARE_BASE_URL)")
		batch   = fs.Int("batch", 500, "resources per transaction")
		quiet   = fs.Bool("quiet", false, "no progress lines")
	)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fhir.Invalid("", "unexpected argument %q", fs.Arg(0))}
	}
	if *dataDir == "" && *dbURL == "" {
		return usageError{fhir.Invalid("", "give --data DIR (or --db URL)")}
	}
	if *batch < 1 {
		return usageError{fhir.Invalid("", "--batch must be at least 1")}
	}
	st, err := backend.Open(ctx, *dataDir, *dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	last := start
	e := engine.New(st, engine.Config{BaseURL: *baseURL})
	n, err := e.Reindex(ctx, *batch, func(done int) {
		if !*quiet && time.Since(last) > time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "reindexed %d resources (%.0f/s)\n", done, float64(done)/time.Since(start).Seconds())
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "reindexed %d resources in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
