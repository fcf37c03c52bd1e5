// Command sharedcare is the one binary of a sharedcare node. Each
// subcommand parses its flags (through internal/config), wires the packages
// it needs and runs; no FHIR, storage or HTTP logic lives here.
//
// Exit codes: 0 success, 1 failure while running, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand.
type command struct {
	run     func(ctx context.Context, args []string) error
	summary string
}

// commands is the subcommand table.
var commands = map[string]command{
	"demo":        {runDemo, "serve a node with a sample record loaded and print a token and curl lines (sharedcare demo [--data DIR] [--addr HOST:PORT])"},
	"serve":       {runServe, "run the FHIR R4 server (sharedcare serve --data DIR [--db URL] [--addr HOST:PORT])"},
	"admin":       {runAdmin, "create and list organisations, users, clients and roles (sharedcare admin org|user|client|role ACTION --data DIR [--db URL])"},
	"audit":       {runAudit, "verify the tamper-evident audit log, print its latest signed checkpoint or its verifier key (sharedcare audit verify|checkpoint|key --data DIR [--db URL] [--checkpoint FILE])"},
	"admin-token": {runAdminToken, "print a short-lived full-access token (sharedcare admin-token --data DIR [--db URL] [--ttl 1h])"},
	"generate":    {runGenerate, "write a synthetic health-and-care region, one folder per organisation (sharedcare generate --people N --seed S --out DIR)"},
	"import":      {runImport, "load FHIR bundles and NDJSON into a server (--url URL --token T) or a local store (--data DIR)"},
	"bench":       {runBench, "measure ingest and read-by-id throughput against a server"},
	"reindex":     {runReindex, "rebuild every search index row from the stored resources (sharedcare reindex --data DIR [--db URL])"},
	"mpi":         {runMPI, "link files of Patients into persons offline and measure against a truth file (sharedcare mpi link --in FILE... --out links.csv [--truth FILE])"},
	"fhirpath":    {runFHIRPath, "evaluate a FHIRPath expression over a resource and print the result as JSON (sharedcare fhirpath EXPRESSION FILE|-)"},
}

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sharedcare <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every flag can also be set by a SHAREDCARE_* environment variable (--base-url is SHAREDCARE_BASE_URL); a flag wins.")
	fmt.Fprintln(w, "Run 'sharedcare <command> -h' for the flags of a command.")
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		usage(stderr)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "sharedcare: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "sharedcare %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "sharedcare %s: %v\n", name, err)
		return 1
	}
}
