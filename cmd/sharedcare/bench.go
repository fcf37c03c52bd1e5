package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/loadgen"
)

// runBench is `sharedcare bench`: the load side of docs/BENCHMARKS.md.
// `bench read` reads by id from concurrent clients; `bench ingest` is
// `import`, whose summary reports the load rate.
func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fhir.Invalid("", "usage: sharedcare bench read|ingest [flags]")
	}
	switch args[0] {
	case "ingest":
		return runImport(ctx, args[1:])
	case "read":
		return runBenchRead(ctx, args[1:])
	}
	return fhir.Invalid("", "bench: unknown benchmark %q (want read or ingest)", args[0])
}

func runBenchRead(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench read", flag.ContinueOnError)
	var (
		baseURL  = fs.String("url", "http://127.0.0.1:8080/fhir", "FHIR base URL of the server (loopback only)")
		token    = fs.String("token", os.Getenv("SHAREDCARE_TOKEN"), "bearer token (default $SHAREDCARE_TOKEN)")
		typ      = fs.String("type", "Patient", "resource type to read")
		idsFile  = fs.String("ids", "", "file of ids to read, one a line (default: list up to --max-ids by search)")
		maxIDs   = fs.Int("max-ids", 10000, "ids to list by search when --ids is not given")
		clients  = fs.String("clients", "32", "concurrent clients; a comma-separated list runs one benchmark per value")
		duration = fs.Duration("duration", 10*time.Second, "measured time of each run (at most 10m)")
		warmup   = fs.Duration("warmup", time.Second, "unmeasured time before each run")
		gz       = fs.Bool("gzip", false, "accept gzip responses")
		rate     = fs.Float64("rate", 0, "open-loop: send this many requests per second in total on a fixed schedule, latency counted from the scheduled time (0: closed-loop, as fast as answered)")
		std      = fs.Bool("std-client", false, "use Go's net/http client instead of the lean HTTP/1.1 one (costs the shared CPU more)")
	)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := loadgen.CheckLoopback(*baseURL); err != nil {
		return err
	}
	var counts []int
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return fhir.Invalid("", "--clients: %q is not a number of clients (1-4096)", s)
		}
		counts = append(counts, n)
	}
	c := loadgen.NewClient(slices.Max(counts), *gz)
	var ids []string
	if *idsFile != "" {
		f, err := os.Open(*idsFile)
		if err != nil {
			return fhir.Invalid("", "--ids: %v", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				ids = append(ids, id[strings.LastIndexByte(id, '/')+1:])
			}
		}
		f.Close()
	} else {
		var err error
		if ids, err = loadgen.ListIDs(ctx, c, *baseURL, *token, *typ, *maxIDs); err != nil {
			return err
		}
	}
	fmt.Printf("read %s/%s/{id} over %d ids\n", strings.TrimRight(*baseURL, "/"), *typ, len(ids))
	for _, n := range counts {
		r, err := loadgen.Read(ctx, c, loadgen.Config{
			BaseURL: *baseURL, Token: *token, Type: *typ, IDs: ids,
			Clients: n, Duration: *duration, Warmup: *warmup, Gzip: *gz, StdClient: *std, Rate: *rate,
		})
		if err != nil {
			return err
		}
		r.Print(os.Stdout)
	}
	return nil
}
