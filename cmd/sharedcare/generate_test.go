package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateCommand(t *testing.T) {
	bad := []struct {
		name string
		args []string
	}{
		{"out is required", []string{"--people", "10"}},
		{"people must be positive", []string{"--people", "0", "--out", t.TempDir()}},
		{"format must be ndjson or bundle", []string{"--people", "10", "--out", t.TempDir(), "--format", "xml"}},
		{"no stray arguments", []string{"--people", "10", "--out", t.TempDir(), "extra"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := runGenerate(t.Context(), tc.args)
			if !errors.As(err, new(usageError)) {
				t.Errorf("runGenerate(%q) = %v, want a usage error (exit 2)", tc.args, err)
			}
		})
	}
	t.Run("writes a region with its truth file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "region")
		if err := runGenerate(t.Context(), []string{"--people", "40", "--seed", "3", "--out", out, "--quiet"}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(out, "truth.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), "organisation,patient,person\n") || strings.Count(string(data), "\n") < 41 {
			t.Errorf("truth.csv starts %q with %d lines; want the header and a row per Patient", string(data[:min(60, len(data))]), strings.Count(string(data), "\n"))
		}
		if err := runGenerate(t.Context(), []string{"--people", "40", "--out", out, "--quiet"}); err == nil {
			t.Error("a second run into the same directory succeeded; want a refusal (files are appended to)")
		}
	})
}
