package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/sharedcare/sharedcare/internal/synth"
)

// runGenerate is `sharedcare generate`: write a synthetic health-and-care
// region (internal/synth) into a directory, one folder per organisation.
func runGenerate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sharedcare generate --people N --seed S --out DIR [--format ndjson|bundle]

Writes a synthetic region: DIR/<ODS code>/ holds one organisation's records
(<Type>.ndjson, or bundle-NNNNN.json transaction bundles of PUTs), each folder
loadable on its own; DIR/truth.csv maps every organisation's Patient to the
true person, DIR/wrong-nhs-numbers.csv lists the NHS numbers injected wrongly,
DIR/organisations.csv lists the organisations. The same --people and --seed
always give the same bytes. See docs/DATA.md.

flags:
`)
		fs.PrintDefaults()
	}
	var (
		people  = fs.Int("people", 1000, "number of people")
		seed    = fs.Uint64("seed", 1, "seed of the pseudo-random generators")
		out     = fs.String("out", "", "output directory (created; must be empty)")
		format  = fs.String("format", "ndjson", "ndjson or bundle")
		workers = fs.Int("workers", 0, "people generated in parallel (0 = GOMAXPROCS)")
		quiet   = fs.Bool("quiet", false, "no summary")
	)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *out == "" {
		return usageError{fmt.Errorf("--out is required")}
	}
	if *people < 1 || *people > synth.MaxPeople() {
		return usageError{fmt.Errorf("--people must be between 1 and %d", synth.MaxPeople())}
	}
	if *format != string(synth.NDJSON) && *format != string(synth.Bundle) {
		return usageError{fmt.Errorf("--format must be ndjson or bundle")}
	}
	start := time.Now()
	sum, err := synth.Generate(ctx, *out, synth.Options{People: *people, Seed: *seed, Format: synth.Format(*format), Workers: *workers})
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "generated %d people, %d organisations, %d patient records, %d resources (%d wrong NHS numbers) in %s\n",
			sum.People, sum.Organisations, sum.Patients, sum.Resources, sum.WrongNHS, time.Since(start).Round(time.Millisecond))
		types := make([]string, 0, len(sum.ByType))
		for t := range sum.ByType {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			fmt.Fprintf(os.Stderr, "  %-20s %d\n", t, sum.ByType[t])
		}
	}
	return nil
}
