package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// runAdminToken is "sharedcare admin-token": it prints a full-access token
// (at most 1 h) signed with the node's key, which it reads from the same
// store "serve" uses. The token's issuer and audience are the base URL, so
// give admin-token the same --addr or --base-url as serve.
func runAdminToken(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin-token", flag.ContinueOnError)
	cfg, err := config.Load(fs, args, os.Getenv, config.TokenFlags)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	st, err := backend.Open(ctx, cfg.DataDir, cfg.DBURL)
	if err != nil {
		return fmt.Errorf("open store (%s): %w", storeName(cfg), err)
	}
	defer st.Close()
	a, err := auth.Load(ctx, st, cfg.BaseURL)
	if err != nil {
		return fmt.Errorf("load the token signing key: %w", err)
	}
	tok, err := a.IssueAdmin(cfg.TokenTTL)
	if err != nil {
		return err
	}
	_, err = fmt.Println(tok)
	return err
}
