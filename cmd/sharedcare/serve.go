package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	mpiservice "github.com/sharedcare/sharedcare/internal/mpi/service"
	"github.com/sharedcare/sharedcare/internal/procs"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// service is the engine, the master patient index and the readiness of
// the store, which /readyz reports.
type service struct {
	*engine.Engine
	*mpiservice.Service
	st store.Store
}

// Ping reports whether the store can serve requests.
func (s service) Ping(ctx context.Context) error { return s.st.Ping(ctx) }

// newLogger builds the process logger from the configuration.
func newLogger(cfg config.Config) *slog.Logger {
	level, _ := cfg.Level() // validated by config.Load
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// runServe is "sharedcare serve": open the store, build the engine and the
// HTTP API, serve until SIGINT or SIGTERM, then stop accepting, let
// in-flight requests finish (up to --shutdown-timeout) and close the store.
func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
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
	return serveStore(ctx, cfg, st, log, nil)
}

// serveStore serves the FHIR API over an open store until ctx is cancelled,
// then stops accepting, lets in-flight requests finish (up to
// cfg.ShutdownTimeout) and returns. ready, when not nil, is called once the
// listener is bound, with the engine and the token authority, before the
// first request is served.
func serveStore(ctx context.Context, cfg config.Config, st store.Store, log *slog.Logger, ready func(*engine.Engine, *auth.Authority, net.Addr) error) error {
	procs.ForServing()
	authority, err := auth.Load(ctx, st, cfg.BaseURL)
	if err != nil {
		return fmt.Errorf("load the token signing key: %w", err)
	}
	// The server-wide lenient default is applied by the API per request
	// (api.writeOptions), so that a client's explicit handling=strict can
	// still win over it; the engine therefore gets only what the API asks.
	eng, index, err := mpiservice.Open(ctx, st, engine.Config{BaseURL: cfg.BaseURL}, mpiservice.Config{Log: log})
	if err != nil {
		return fmt.Errorf("start the master patient index: %w", err)
	}
	// Patients written without the index (import --data, or before a crash
	// between a write and its link) are linked in the background.
	go func() {
		if _, err := index.CatchUp(ctx); err != nil && ctx.Err() == nil {
			log.Error("mpi: catching up failed", "error", err)
		}
	}()
	// Who may see what (issue 6): the policy file compiled once, every
	// request decided against it and the data's relationships and consents.
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		return fmt.Errorf("the access policy: %w", err)
	}
	// Every interaction is audited before its response leaves (issue 7):
	// the log is closed, with its last checkpoint signed, once the HTTP
	// server has stopped.
	auditLog, err := audit.Open(ctx, st, cfg.DataDir, log)
	if err != nil {
		return fmt.Errorf("open the audit log: %w", err)
	}
	defer func() {
		if err := auditLog.Close(context.Background()); err != nil {
			log.Error("closing the audit log", "error", err)
		}
	}()
	if !auditLog.Recording() {
		// Every request would be refused: say so now rather than serve 503s.
		return fmt.Errorf("another node is running on the data directory %s (it holds the audit spool): one node to a data directory", cfg.DataDir)
	}
	handler := api.Audited(api.NewWithAccess(service{Engine: eng, Service: index, st: st}, authority, access.New(st, pol), cfg, log), auditLog, cfg.BaseURL)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// A 16 MiB bundle arrives in well under a minute on any link an
		// integration engine uses; a client trickling a body slower than
		// that is holding a connection hostage.
		ReadTimeout:    2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		if err := ready(eng, authority, ln.Addr()); err != nil {
			ln.Close()
			return err
		}
	}
	log.Info("serving FHIR R4", "addr", ln.Addr().String(), "base_url", cfg.BaseURL, "store", storeName(cfg),
		"cores", procs.Cores(), "gomaxprocs", runtime.GOMAXPROCS(0), "gogc", procs.GCPercent(), "memory_limit", debug.SetMemoryLimit(-1), "config", cfg)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("in-flight requests did not finish in time", "error", err)
		_ = srv.Close()
	}
	log.Info("stopped")
	return nil
}

// storeName says which backend a configuration selects, without secrets.
func storeName(cfg config.Config) string {
	if cfg.DBURL != "" {
		return "postgres " + cfg.RedactedDBURL()
	}
	return "sqlite " + cfg.DataDir
}
