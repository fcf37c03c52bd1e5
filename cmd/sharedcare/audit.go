package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// auditOut is where the audit commands print (a test replaces it).
var auditOut io.Writer = os.Stdout

// runAudit is `sharedcare audit verify|checkpoint|key`.
func runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "checkpoint" && args[0] != "key") {
		return usageError{fhir.Invalid("", "usage: sharedcare audit verify|checkpoint|key --data DIR [--db URL] (see -h of each)")}
	}
	action := args[0]
	fs := flag.NewFlagSet("audit "+action, flag.ContinueOnError)
	fs.Usage = func() {
		switch action {
		case "verify":
			fmt.Fprint(fs.Output(), `usage: sharedcare audit verify --data DIR [--db URL] [--checkpoint FILE]

Recomputes every leaf hash of the audit log from the stored entries and the
Merkle tree from them, checks every stored checkpoint's signature (with the
node's verifier key in DIR) and root, and checks that the node's own latest
checkpoint (DIR/audit-checkpoint) and the one in FILE, kept by an outside
party, are trees the log still extends. Exits 1 naming the first bad entry
when a row was altered, deleted, inserted or reordered, or the store was
rolled back behind a checkpoint.

flags:
`)
		case "key":
			fmt.Fprint(fs.Output(), `usage: sharedcare audit key --data DIR

Prints the node's audit verifier key (public): what an outside party needs
to check the checkpoints the node signs. The node creates its key pair on
first start.

flags:
`)
		default:
			fmt.Fprint(fs.Output(), `usage: sharedcare audit checkpoint --data DIR [--db URL]

Prints the latest signed checkpoint of the audit log, signing one of the
current tree first if the log has grown since: what an outside party keeps
to check later (sharedcare audit verify --checkpoint FILE) that the log was
only appended to.

flags:
`)
		}
		fs.PrintDefaults()
	}
	var (
		dataDir    = fs.String("data", os.Getenv("SHAREDCARE_DATA"), "data directory of the node: its audit keys, and the store unless --db (default $SHAREDCARE_DATA)")
		dbURL      = fs.String("db", os.Getenv("SHAREDCARE_DB"), "PostgreSQL URL of the store (default $SHAREDCARE_DB; empty for SQLite in --data)")
		checkpoint *string
	)
	if action == "verify" {
		checkpoint = fs.String("checkpoint", "", "a checkpoint kept earlier (the output of sharedcare audit checkpoint) to check the log against")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fhir.Invalid("", "unexpected argument %q", fs.Arg(0))}
	}
	if *dataDir == "" {
		return usageError{fhir.Invalid("", "give --data DIR: the node's audit keys are there")}
	}
	if action == "key" {
		vkey, err := audit.ReadVerifierKey(*dataDir)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(auditOut, vkey)
		return err
	}
	var kept []byte
	if checkpoint != nil && *checkpoint != "" {
		b, err := os.ReadFile(*checkpoint)
		if err != nil {
			return usageError{fhir.Invalid("", "--checkpoint: %v", err)}
		}
		kept = b
	}
	st, err := backend.Open(ctx, *dataDir, *dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if action == "checkpoint" {
		return auditCheckpoint(ctx, st, *dataDir)
	}
	return auditVerify(ctx, st, *dataDir, kept)
}

// auditCheckpoint prints the latest signed checkpoint.
func auditCheckpoint(ctx context.Context, st store.Store, dataDir string) error {
	l, err := audit.Open(ctx, st, dataDir, nil)
	if err != nil {
		return err
	}
	c, err := l.Checkpoint(ctx)
	if cerr := l.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = auditOut.Write(c.Note)
	return err
}

// auditVerify verifies the log and prints what it found.
func auditVerify(ctx context.Context, st store.Store, dataDir string, kept []byte) error {
	as, ok := st.(store.AuditStore)
	if !ok {
		return fhir.Internal(fmt.Errorf("the store %T keeps no audit log", st))
	}
	vkey, err := audit.ReadVerifierKey(dataDir)
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fhir.Internal(fmt.Errorf("%s: %w", audit.VerifierKeyFile, err))
	}
	var trusted [][]byte
	own, err := os.ReadFile(filepath.Join(dataDir, audit.CheckpointFile))
	switch {
	case err == nil:
		trusted = append(trusted, own)
	case !errors.Is(err, fs.ErrNotExist):
		return fhir.Internal(err)
	}
	if kept != nil {
		trusted = append(trusted, kept)
	}
	r, err := audit.Verify(ctx, as, note.VerifierList(v), trusted)
	if err != nil {
		return err
	}
	fmt.Fprintf(auditOut, "audit log: %d entries recorded, %d verified; %d checkpoints verified (signer %s)",
		r.Size, r.Entries, r.Checkpoints, v.Name())
	if r.Unchecked > 0 {
		fmt.Fprintf(auditOut, ", %d signed by other keys not checked", r.Unchecked)
	}
	fmt.Fprintf(auditOut, "; %d entries after the latest checkpoint\n", r.Uncovered)
	if r.OK() {
		fmt.Fprintln(auditOut, "OK")
		return nil
	}
	for _, p := range r.Problems {
		fmt.Fprintln(auditOut, "BAD:", p)
	}
	if first := r.FirstBad(); first >= 0 {
		return fmt.Errorf("the audit log does not verify: first bad entry %d (%d problem(s))", first, len(r.Problems))
	}
	return fmt.Errorf("the audit log does not verify (%d problem(s))", len(r.Problems))
}
