package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestMPILinkCommand(t *testing.T) {
	bad := []struct {
		name string
		args []string
	}{
		{"in is required", []string{"--out", filepath.Join(t.TempDir(), "l.csv")}},
		{"out is required", []string{"--in", t.TempDir()}},
		{"an input must exist", []string{"--in", filepath.Join(t.TempDir(), "none.ndjson"), "--out", filepath.Join(t.TempDir(), "l.csv")}},
		{"an unknown flag", []string{"--bogus"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := runMPILink(t.Context(), tc.args, new(bytes.Buffer))
			if !errors.As(err, new(usageError)) {
				t.Errorf("runMPILink(%q) = %v, want a usage error (exit 2)", tc.args, err)
			}
		})
	}
	t.Run("an unknown subcommand is a usage error", func(t *testing.T) {
		if err := runMPI(t.Context(), []string{"unlink"}); !errors.As(err, new(usageError)) {
			t.Errorf("got %v, want a usage error", err)
		}
	})
	t.Run("a malformed line is reported with its file and line, not a panic", func(t *testing.T) {
		dir := t.TempDir()
		in := filepath.Join(dir, "Patient.ndjson")
		os.WriteFile(in, []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+`{"resourceType":"Patient",`+"\n"), 0o644)
		err := runMPILink(t.Context(), []string{"--in", in, "--out", filepath.Join(dir, "l.csv")}, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "Patient.ndjson:2") {
			t.Errorf("got %v, want an error naming Patient.ndjson:2", err)
		}
	})
	for _, format := range []string{"ndjson", "bundle"} {
		t.Run("links a generated region ("+format+") and measures it against truth.csv", func(t *testing.T) {
			region := filepath.Join(t.TempDir(), "region")
			if err := runGenerate(t.Context(), []string{"--people", "300", "--seed", "11", "--out", region, "--format", format, "--quiet"}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "links.csv")
			var stdout bytes.Buffer
			args := []string{"--in", region, "--out", out, "--truth", filepath.Join(region, "truth.csv"), "--review", filepath.Join(t.TempDir(), "review.csv")}
			if err := runMPILink(t.Context(), args, &stdout); err != nil {
				t.Fatal(err)
			}
			truth, _ := os.ReadFile(filepath.Join(region, "truth.csv"))
			links, _ := os.ReadFile(out)
			if got, want := strings.Count(string(links), "\n"), strings.Count(string(truth), "\n"); got != want {
				t.Errorf("links.csv has %d lines, truth.csv %d: want one row per Patient", got, want)
			}
			if !strings.HasPrefix(string(links), "patient,person\n") {
				t.Errorf("links.csv starts %q, want the patient,person header", string(links[:min(40, len(links))]))
			}
			m := regexp.MustCompile(`precision ([0-9.]+)\s+recall ([0-9.]+)\s+F1 ([0-9.]+)`).FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("no precision/recall/F1 in the output:\n%s", stdout.String())
			}
			p, _ := strconv.ParseFloat(m[1], 64)
			r, _ := strconv.ParseFloat(m[2], 64)
			if p < 0.999 || r < 0.98 {
				t.Errorf("precision %.5f recall %.5f, want >= 0.999 and >= 0.98\n%s", p, r, stdout.String())
			}
		})
	}
}
