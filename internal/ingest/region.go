package ingest

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// A region is what `sharedcare generate` writes: one folder per organisation,
// named by its ODS code, each loadable on its own into that organisation's
// node (its references stay inside it), plus organisations.csv listing
// them.

// odsPattern is the shape of an ODS code: letters and digits, 3 to 10 long.
var odsPattern = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)

// Organisations returns the ODS codes of a region folder, in order: those
// listed in DIR/organisations.csv (column "ods"), or, without that file,
// every sub-folder whose name is an ODS code.
func Organisations(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "organisations.csv"))
	if errors.Is(err, os.ErrNotExist) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		var codes []string
		for _, e := range entries {
			if e.IsDir() && odsPattern.MatchString(e.Name()) {
				codes = append(codes, e.Name())
			}
		}
		if len(codes) == 0 {
			return nil, fhir.Invalid("", "%s holds no organisation folders (named by ODS code) and no organisations.csv", dir)
		}
		return codes, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fhir.Invalid("", "%s: %v", f.Name(), err)
	}
	if len(rows) == 0 || len(rows[0]) == 0 || rows[0][0] != "ods" {
		return nil, fhir.Invalid("", "%s: the first column must be headed \"ods\"", f.Name())
	}
	var codes []string
	for _, r := range rows[1:] {
		if !odsPattern.MatchString(r[0]) {
			return nil, fhir.Invalid("", "%s: %q is not an ODS code", f.Name(), r[0])
		}
		codes = append(codes, r[0])
	}
	return codes, nil
}

// Node is where one organisation's data goes, as given in a nodes file.
type Node struct {
	ODS   string
	URL   string // the node's FHIR base URL
	Token string // bearer token for that node; "" to use the default
}

// ReadNodes reads a nodes file: CSV with the header "ods,url[,token]", one
// row per organisation. A token column lets each node verify its own
// tokens; rows without one use the --token given to the command.
func ReadNodes(r io.Reader) (map[string]Node, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fhir.Invalid("", "nodes file: %v", err)
	}
	if len(rows) == 0 || len(rows[0]) < 2 || rows[0][0] != "ods" || rows[0][1] != "url" {
		return nil, fhir.Invalid("", "nodes file: the header must be ods,url[,token]")
	}
	nodes := map[string]Node{}
	for i, r := range rows[1:] {
		n := Node{ODS: strings.TrimSpace(r[0]), URL: strings.TrimSpace(r[1])}
		if len(r) > 2 {
			n.Token = strings.TrimSpace(r[2])
		}
		if !odsPattern.MatchString(n.ODS) || n.URL == "" {
			return nil, fhir.Invalid("", "nodes file line %d: want an ODS code and a URL", i+2)
		}
		if _, dup := nodes[n.ODS]; dup {
			return nil, fhir.Invalid("", "nodes file line %d: %s is listed twice", i+2, n.ODS)
		}
		nodes[n.ODS] = n
	}
	return nodes, nil
}

// SinkFor opens the sink of one organisation's node; close is called when
// that organisation is loaded.
type SinkFor func(ctx context.Context, ods string) (sink Sink, close func() error, err error)

// RunRegion loads each organisation's folder of a region into its own node,
// one organisation after another (each Run is itself parallel). Every node
// is opened before anything is loaded, so an organisation without a node
// (a typo in the nodes file) stops the run before a region is half-routed.
// It returns a summary per ODS code.
func RunRegion(ctx context.Context, dir string, codes []string, open SinkFor, opt Options) (sums map[string]*Summary, err error) {
	sinks := make([]Sink, len(codes))
	for i, ods := range codes {
		sink, closeSink, oerr := open(ctx, ods)
		if oerr != nil {
			return nil, fmt.Errorf("%s: %w", ods, oerr)
		}
		sinks[i] = sink
		defer func() {
			if cerr := closeSink(); err == nil && cerr != nil {
				err = fmt.Errorf("%s: %w", ods, cerr)
			}
		}()
	}
	sums = map[string]*Summary{}
	for i, ods := range codes {
		sum, rerr := Run(ctx, sinks[i], []string{filepath.Join(dir, ods)}, opt)
		sums[ods] = sum
		if rerr != nil {
			return sums, fmt.Errorf("%s: %w", ods, rerr)
		}
	}
	return sums, nil
}

// PrintRegion writes one line per organisation and the totals.
func PrintRegion(w io.Writer, sums map[string]*Summary) {
	codes := make([]string, 0, len(sums))
	for c := range sums {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var loaded, failed int
	for _, c := range codes {
		s := sums[c]
		fmt.Fprintf(w, "%-8s ", c)
		s.Print(w)
		loaded += s.Loaded
		failed += s.Failed
	}
	fmt.Fprintf(w, "region: %d organisations, loaded %d resources, failed %d\n", len(codes), loaded, failed)
}
