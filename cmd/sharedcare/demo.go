package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/demo"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// demoOut is where the demo prints its instructions (a test swaps it).
var demoOut io.Writer = os.Stdout

// defaultDemoData is the data folder the demo uses when none is given: a
// folder beside the working directory, kept between runs.
const defaultDemoData = "sharedcare-demo"

// runDemo is "sharedcare demo": serve a node on the embedded SQLite store
// (or --db), load the sample record into it, and print a token and curl
// lines to try. It is serve with a head start, for a first look.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	if !hasFlag(args, "data") && os.Getenv("SHAREDCARE_DATA") == "" {
		args = append([]string{"--data", defaultDemoData}, args...)
	}
	cfg, err := config.Load(fs, args, os.Getenv, config.ServeFlags)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if cfg.DBURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return err
		}
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := backend.Open(ctx, cfg.DataDir, cfg.DBURL)
	if err != nil {
		return fmt.Errorf("open store (%s): %w", storeName(cfg), err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "error", err)
		}
	}()
	return serveStore(ctx, cfg, st, log, func(eng *engine.Engine, a *auth.Authority, addr net.Addr) error {
		// PUTs with fixed ids: loading again on a restart changes nothing.
		if _, err := eng.Bundle(ctx, demo.Bundle, engine.WriteOptions{}); err != nil {
			return fmt.Errorf("load the sample record: %w", err)
		}
		tok, err := a.IssueAdmin(time.Hour)
		if err != nil {
			return err
		}
		printDemo(demoOut, cfg, storeName(cfg), tok)
		return nil
	})
}

func printDemo(w io.Writer, cfg config.Config, store, token string) {
	b := cfg.BaseURL
	fmt.Fprintf(w, `
sharedcare demo: a FHIR R4 node on %s
  FHIR base  %s
  token      valid for one hour (a new one: sharedcare admin-token --data %s)

Try it (Ctrl-C stops the node; the data stays in %s):

  export TOKEN=%s
  curl -s %s/metadata | head -c 300; echo
  curl -s -H "Authorization: Bearer $TOKEN" '%s/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|%s&_pretty=true'
  curl -s -H "Authorization: Bearer $TOKEN" '%s/Patient/%s/_history'
  curl -s -H "Authorization: Bearer $TOKEN" '%s/Condition/demo-condition-1?_pretty=true'

`, store, b, cfg.DataDir, cfg.DataDir, token, b, b, demo.NHSNumber, b, demo.PatientID, b)
}

// hasFlag reports whether args set the flag name (as -name or --name, with
// or without =value).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
