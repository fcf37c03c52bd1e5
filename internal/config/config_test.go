package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, func(k string) string { return env[k] }, ServeFlags)
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(c Config) string // returns "" when right, else what is wrong
		wantErr string
	}{
		{
			name: "defaults derive the base URL from the address",
			args: []string{"--data", "/tmp/x"},
			check: func(c Config) string {
				if c.Addr != "127.0.0.1:8080" || c.BaseURL != "http://127.0.0.1:8080/fhir" || c.MaxBodyBytes != 16<<20 || c.Lenient {
					return "defaults wrong: " + c.Addr + " " + c.BaseURL
				}
				return ""
			},
		},
		{
			name: "environment fills settings",
			env:  map[string]string{"SHAREDCARE_DATA": "/d", "SHAREDCARE_ADDR": "127.0.0.1:9999", "SHAREDCARE_LENIENT": "true"},
			check: func(c Config) string {
				if c.DataDir != "/d" || c.BaseURL != "http://127.0.0.1:9999/fhir" || !c.Lenient {
					return "env not applied"
				}
				return ""
			},
		},
		{
			name: "a flag wins over the environment",
			env:  map[string]string{"SHAREDCARE_DATA": "/env"},
			args: []string{"--data", "/flag", "--lenient"},
			check: func(c Config) string {
				if c.DataDir != "/flag" || !c.Lenient {
					return "got data " + c.DataDir
				}
				return ""
			},
		},
		{
			name: "explicit base URL loses its trailing slash",
			args: []string{"--data", "/d", "--base-url", "https://care.example.org/fhir/"},
			check: func(c Config) string {
				if c.BaseURL != "https://care.example.org/fhir" {
					return "base " + c.BaseURL
				}
				return ""
			},
		},
		{name: "data or db is required", wantErr: "--data DIR"},
		{name: "db must be a postgres URL", args: []string{"--db", "mysql://x"}, wantErr: "postgres://"},
		{name: "bad address", args: []string{"--data", "/d", "--addr", "nope"}, wantErr: "host:port"},
		{name: "bad base URL", args: []string{"--data", "/d", "--base-url", "ftp://x"}, wantErr: "--base-url"},
		{name: "tiny body limit", args: []string{"--data", "/d", "--max-body", "10"}, wantErr: "--max-body"},
		{name: "bad log level", args: []string{"--data", "/d", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad duration in environment names the variable", env: map[string]string{"SHAREDCARE_SHUTDOWN_TIMEOUT": "soon"}, wantErr: "SHAREDCARE_SHUTDOWN_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.env, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if msg := tt.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestTokenTTLIsAtMostAnHour(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := Load(fs, []string{"--data", "/d", "--ttl", "2h"}, func(string) string { return "" }, TokenFlags)
	if err == nil || !strings.Contains(err.Error(), "--ttl") {
		t.Fatalf("err = %v, want a --ttl error", err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	c, err := Load(fs, []string{"--data", "/d", "--ttl", "10m"}, func(string) string { return "" }, TokenFlags)
	if err != nil || c.TokenTTL != 10*time.Minute {
		t.Fatalf("ttl = %v, %v; want 10m", c.TokenTTL, err)
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for _, raw := range []string{
		"postgres://alice:s3cret@db.example/care",
		"postgres://db.example/care?user=alice&password=s3cret",
	} {
		got := Redact(raw)
		if strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, still holds the password", raw, got)
		}
		c := Config{DBURL: raw}
		if v := c.LogValue().String(); strings.Contains(v, "s3cret") {
			t.Errorf("LogValue holds the password: %s", v)
		}
	}
}

func TestUsageNeverShowsTheEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	env := map[string]string{"SHAREDCARE_DB": "postgres://alice:s3cret@db/care"}
	_, err := Load(fs, []string{"-h"}, func(k string) string { return env[k] }, ServeFlags)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("usage shows the password from the environment:\n%s", out.String())
	}
}
