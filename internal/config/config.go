// Package config is the one place where sharedcare's settings are defined:
// their defaults, their flags and SHAREDCARE_* environment variables, and
// the checks run on them at start-up. cmd/sharedcare fills a Config and hands
// it to the packages it wires; no other package reads flags or the
// environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxTokenTTL is the longest lifetime of an access token the node issues
// (issue 2: "a short-lived (≤ 1 h) full-access token").
const MaxTokenTTL = time.Hour

// Config holds every setting of a sharedcare process.
type Config struct {
	Addr            string        // listen address of the HTTP server
	DataDir         string        // directory of the SQLite store (and other node files)
	DBURL           string        // PostgreSQL URL; empty means SQLite in DataDir. May hold a password: see Redacted.
	BaseURL         string        // absolute base of the FHIR API; empty means http://Addr/fhir
	MaxBodyBytes    int64         // largest request body, after decompression
	MaxDepth        int           // deepest JSON nesting accepted in a request body
	Lenient         bool          // server-wide Prefer: handling=lenient
	LogLevel        string        // debug, info, warn or error
	LogFormat       string        // json or text
	ShutdownTimeout time.Duration // how long a graceful shutdown waits for in-flight requests
	TokenTTL        time.Duration // lifetime of tokens minted by admin-token
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		MaxBodyBytes:    16 << 20,
		MaxDepth:        100,
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 15 * time.Second,
		TokenTTL:        MaxTokenTTL,
	}
}

// setting describes one configurable field: its flag name, environment
// variable, usage text and how to parse and print it.
type setting struct {
	name  string
	usage string
	get   func(c *Config) string
	set   func(c *Config, s string) error
}

func strSetting(name, usage string, field func(c *Config) *string) setting {
	return setting{name: name, usage: usage,
		get: func(c *Config) string { return *field(c) },
		set: func(c *Config, s string) error { *field(c) = s; return nil }}
}

func durSetting(name, usage string, field func(c *Config) *time.Duration) setting {
	return setting{name: name, usage: usage,
		get: func(c *Config) string { return field(c).String() },
		set: func(c *Config, s string) error {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("not a duration (e.g. 30s, 1h): %q", s)
			}
			*field(c) = d
			return nil
		}}
}

func intSetting[T int | int64](name, usage string, field func(c *Config) *T) setting {
	return setting{name: name, usage: usage,
		get: func(c *Config) string { return strconv.FormatInt(int64(*field(c)), 10) },
		set: func(c *Config, s string) error {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("not a whole number: %q", s)
			}
			*field(c) = T(n)
			return nil
		}}
}

func settings() []setting {
	return []setting{
		strSetting("addr", "listen address (host:port)", func(c *Config) *string { return &c.Addr }),
		strSetting("data", "data directory (holds the SQLite store when --db is not set)", func(c *Config) *string { return &c.DataDir }),
		strSetting("db", "PostgreSQL URL (postgres://user:pass@host/db); empty = SQLite in --data", func(c *Config) *string { return &c.DBURL }),
		strSetting("base-url", "absolute base URL of the FHIR API (default http://ADDR/fhir)", func(c *Config) *string { return &c.BaseURL }),
		intSetting("max-body", "largest request body in bytes, after decompression", func(c *Config) *int64 { return &c.MaxBodyBytes }),
		intSetting("max-depth", "deepest JSON nesting accepted in a request body", func(c *Config) *int { return &c.MaxDepth }),
		{name: "lenient", usage: "accept unknown elements on every write, dropping each with a warning",
			get: func(c *Config) string { return strconv.FormatBool(c.Lenient) },
			set: func(c *Config, s string) error {
				b, err := strconv.ParseBool(s)
				if err != nil {
					return fmt.Errorf("not true or false: %q", s)
				}
				c.Lenient = b
				return nil
			}},
		strSetting("log-level", "log level: debug, info, warn, error", func(c *Config) *string { return &c.LogLevel }),
		strSetting("log-format", "log format: text or json", func(c *Config) *string { return &c.LogFormat }),
		durSetting("shutdown-timeout", "how long shutdown waits for in-flight requests", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		durSetting("ttl", "lifetime of a minted token (at most 1h)", func(c *Config) *time.Duration { return &c.TokenTTL }),
	}
}

// EnvName is the environment variable of a flag: SHAREDCARE_ plus the flag
// name in upper case with '-' as '_' (--base-url is SHAREDCARE_BASE_URL).
func EnvName(flagName string) string {
	return "SHAREDCARE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Flag names offered by each subcommand.
var (
	// ServeFlags are the settings of "sharedcare serve".
	ServeFlags = []string{"data", "db", "addr", "base-url", "lenient", "max-body", "max-depth", "log-level", "log-format", "shutdown-timeout"}
	// TokenFlags are the settings of "sharedcare admin-token". The address
	// and base URL are there because a token's issuer and audience are the
	// base URL of the server that will verify it.
	TokenFlags = []string{"data", "db", "addr", "base-url", "ttl"}
)

// Load builds a Config for one subcommand: defaults, then every
// SHAREDCARE_* variable getenv returns, then the flags in args (a flag wins
// over the environment). fs receives the flags named in flags; Load parses
// args with it and returns the remaining arguments in fs.Args(). The result
// is validated.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string, flags []string) (Config, error) {
	c := Default()
	all := settings()
	for _, s := range all {
		v := getenv(EnvName(s.name))
		if v == "" {
			continue
		}
		if err := s.set(&c, v); err != nil {
			return c, fmt.Errorf("config: %s: %w", EnvName(s.name), err)
		}
	}
	for _, name := range flags {
		var s *setting
		for i := range all {
			if all[i].name == name {
				s = &all[i]
			}
		}
		if s == nil {
			panic("config: unknown flag " + name)
		}
		// The default shown is the built-in one, never a value from the
		// environment, which may hold a password (SHAREDCARE_DB).
		def := Default()
		usage := s.usage + " (env " + EnvName(s.name)
		if v := s.get(&def); v != "" {
			usage += ", default " + strconv.Quote(v)
		}
		usage += ")"
		if s.name == "lenient" {
			// A boolean flag, so that "--lenient" stands alone.
			fs.BoolFunc(s.name, usage, func(v string) error { return s.set(&c, v) })
			continue
		}
		fs.Func(s.name, usage, func(v string) error { return s.set(&c, v) })
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Addr + "/fhir"
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// Validate checks the settings and says, for the first bad one, which and
// why, so that a misconfigured node refuses to start.
func (c *Config) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q is not host:port", c.Addr))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("--addr %q has a bad port", c.Addr))
	}
	if c.DataDir == "" && c.DBURL == "" {
		errs = append(errs, errors.New("--data DIR (or SHAREDCARE_DATA) is required when --db is not set"))
	}
	if c.DBURL != "" {
		u, err := url.Parse(c.DBURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("--db must be a postgres:// or postgresql:// URL"))
		}
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("--base-url %q must be an absolute http(s) URL without query or fragment", c.BaseURL))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-body %d is below 1024 bytes", c.MaxBodyBytes))
	}
	if c.MaxDepth < 10 || c.MaxDepth > 10000 {
		errs = append(errs, fmt.Errorf("--max-depth %d must be between 10 and 10000", c.MaxDepth))
	}
	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q must be text or json", c.LogFormat))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %s must be positive", c.ShutdownTimeout))
	}
	if c.TokenTTL <= 0 || c.TokenTTL > MaxTokenTTL {
		errs = append(errs, fmt.Errorf("--ttl %s must be more than 0 and at most %s", c.TokenTTL, MaxTokenTTL))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// Level returns LogLevel as a slog.Level.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("--log-level %q must be debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// RedactedDBURL returns DBURL with any password replaced by "xxxxx", for
// logs and error messages.
func (c *Config) RedactedDBURL() string {
	return Redact(c.DBURL)
}

// Redact hides the password of a URL. A string that does not parse as a URL
// is hidden completely, since it may be a password itself.
func Redact(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL hidden)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// LogValue makes a Config safe to log whole: the database URL is redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("data", c.DataDir),
		slog.String("db", c.RedactedDBURL()),
		slog.String("base_url", c.BaseURL),
		slog.Int64("max_body", c.MaxBodyBytes),
		slog.Int("max_depth", c.MaxDepth),
		slog.Bool("lenient", c.Lenient),
		slog.String("log_level", c.LogLevel),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
	)
}
