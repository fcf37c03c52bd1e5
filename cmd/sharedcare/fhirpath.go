package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhirpath"
)

// runFHIRPath is `sharedcare fhirpath EXPRESSION FILE`: evaluate a FHIRPath
// expression over one resource and print the result collection as a JSON
// array, for people debugging search parameters and invariants.
func runFHIRPath(ctx context.Context, args []string) error {
	return fhirpathCommand(ctx, args, os.Stdin, os.Stdout)
}

func fhirpathCommand(_ context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("fhirpath", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sharedcare fhirpath [--types] [--strict] EXPRESSION FILE

Evaluates the FHIRPath EXPRESSION with the resource in FILE (JSON; - reads
standard input) as its context and prints the result collection as a JSON
array; trace() output goes to standard error. resolve() resolves contained resources and Bundle entries; other
references resolve to a stand-in that knows only its type.

flags:
`)
		fs.PrintDefaults()
	}
	types := fs.Bool("types", false, `print each item as {"type": ..., "value": ...}`)
	strict := fs.Bool("strict", false, "fail on element names the R4 model does not define and on paths about another type (catches typos)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 2 {
		return usageError{fmt.Errorf("want EXPRESSION and FILE, got %d arguments", fs.NArg())}
	}
	expr, file := fs.Arg(0), fs.Arg(1)
	e, err := fhirpath.Compile(expr)
	if err != nil {
		return err
	}
	var data []byte
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("reading the resource: %w", err)
	}
	res, err := fhir.ParseObject(data, 256)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if fhir.ResourceType(res) == "" {
		return fmt.Errorf("%s: not a FHIR resource (no resourceType)", file)
	}
	// trace() output goes to standard error, keeping standard output the
	// result alone.
	trace := fhirpath.WithTrace(func(name string, values []fhirpath.Value) {
		items := make([]any, len(values))
		for i, v := range values {
			items[i] = v.JSON()
		}
		fmt.Fprintf(os.Stderr, "trace %s: %s\n", name, fhir.Marshal(items))
	})
	opts := []fhirpath.Option{trace}
	if *strict {
		opts = append(opts, fhirpath.WithStrict())
	}
	out, err := e.Evaluate(res, opts...)
	if err != nil {
		return err
	}
	items := make([]any, len(out))
	for i, v := range out {
		items[i] = v.JSON()
		if *types {
			typ := v.Type()
			if v.IsSystem() {
				typ = "System." + typ
			}
			items[i] = fhir.Object{"type": typ, "value": v.JSON()}
		}
	}
	_, err = stdout.Write(append(fhir.MarshalIndent(items), '\n'))
	return err
}
