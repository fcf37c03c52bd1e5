// Package loadgen drives a running sharedcare server for the benchmarks in
// docs/BENCHMARKS.md: it reads resources by id from many concurrent clients
// for a fixed time and reports throughput and latency percentiles.
//
// It is a client of the HTTP API and nothing else, so it measures what an
// integration engine would see. Because a load generator pointed at the
// wrong host is a denial-of-service tool, it only talks to loopback
// addresses, and every run stops by itself after its duration.
package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/procs"
)

// MaxDuration bounds one run, so a typo cannot load a machine for hours.
const MaxDuration = 10 * time.Minute

// Config describes one read benchmark.
type Config struct {
	BaseURL string   // FHIR base, e.g. http://127.0.0.1:8080/fhir; must be loopback
	Token   string   // bearer token
	Type    string   // resource type read, e.g. Patient
	IDs     []string // ids to read, in turn; ListIDs fills them from the server
	// Paths, when set, are requested in turn instead of Type and IDs:
	// each is relative to BaseURL and may carry a query
	// ("Observation?subject=Patient/1"), for a search benchmark.
	Paths    []string
	Clients  int           // concurrent clients, each with its own keep-alive connection; 0 means 1
	Duration time.Duration // measured time; 0 means 10 s
	Warmup   time.Duration // time run before measuring (connections, caches); not counted
	// Rate, when positive, makes the run open-loop: requests are sent on a
	// fixed schedule totalling Rate per second, spread over the clients, and
	// each latency is measured from the request's scheduled time, so a
	// stalled server is charged for the requests it delayed (no coordinated
	// omission, as in wrk2). Zero is closed-loop: each client sends its next
	// request as soon as the previous one is answered, which measures the
	// server's capacity, and whose latency is then clients/throughput by
	// Little's law.
	Rate float64
	Gzip bool // accept gzip responses, as most clients do
	// StdClient uses net/http's client instead of the lean one (rawClient);
	// https base URLs always do.
	StdClient bool
}

// Result is what a run measured.
type Result struct {
	Clients  int
	Rate     float64       // the fixed offered rate; 0 for closed-loop
	Requests int           // completed in the measured window
	Errors   int           // of those, not 200 or failed in transport
	Elapsed  time.Duration // the measured window
	Status   map[int]int   // responses by status; 0 counts transport failures
	// Machine is how the whole machine's CPU time was spent over the
	// measured window (server, load generator and everything else on
	// it), when MachineKnown: on a virtual machine its Steal share is
	// time the host took, which shows in the tail before anywhere else.
	Machine      procs.MachineUse
	MachineKnown bool
	sorted       []time.Duration
}

// Throughput is requests per second over the measured window.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the latency below which p percent (0-100) of requests
// completed, by the nearest-rank method on every sample (no histogram
// rounding: runs are short enough to keep all samples).
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(r.sorted))))
	return r.sorted[min(max(rank, 1), len(r.sorted))-1]
}

// Max is the slowest request.
func (r *Result) Max() time.Duration {
	if len(r.sorted) == 0 {
		return 0
	}
	return r.sorted[len(r.sorted)-1]
}

// Print writes the result as the benchmark report lines.
func (r *Result) Print(w io.Writer) {
	mode := ""
	if r.Rate > 0 {
		mode = fmt.Sprintf(" at a fixed %.0f req/s", r.Rate)
	}
	fmt.Fprintf(w, "clients %d%s, %s: %d requests, %.0f req/s, %d errors\n",
		r.Clients, mode, r.Elapsed.Round(time.Millisecond), r.Requests, r.Throughput(), r.Errors)
	fmt.Fprintf(w, "latency p50 %s  p90 %s  p99 %s  max %s\n",
		ms(r.Percentile(50)), ms(r.Percentile(90)), ms(r.Percentile(99)), ms(r.Max()))
	if r.MachineKnown {
		fmt.Fprintf(w, "machine CPU over the window: busy %.0f%%, idle %.0f%%, stolen by the host %.1f%%\n",
			100*r.Machine.Busy, 100*r.Machine.Idle, 100*r.Machine.Steal)
	}
	if r.Errors > 0 {
		codes := make([]int, 0, len(r.Status))
		for c := range r.Status {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			if c != http.StatusOK {
				fmt.Fprintf(w, "  status %d: %d\n", c, r.Status[c])
			}
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// CheckLoopback refuses a base URL whose host is not this machine
// (localhost, 127.0.0.0/8 or ::1).
func CheckLoopback(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fhir.Invalid("", "--url %q is not an http(s) URL", base)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fhir.Errorf(fhir.EForbidden, "", "bench only runs against this machine (127.0.0.1, ::1 or localhost), not %q", h)
}

// NewClient returns an HTTP client keeping one connection per benchmark client.
func NewClient(clients int, gzip bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = clients + 4
	tr.MaxIdleConnsPerHost = clients + 4
	tr.DisableCompression = !gzip
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// ListIDs returns up to max ids of typ from the server, by a search with a
// large page size, following next links.
func ListIDs(ctx context.Context, c *http.Client, base, token, typ string, max int) ([]string, error) {
	next := strings.TrimRight(base, "/") + "/" + typ + "?_count=" + strconv.Itoa(min(max, 1000))
	var ids []string
	for next != "" && len(ids) < max {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, fhir.Invalid("", "%v", err)
		}
		req.Header.Set("Accept", "application/fhir+json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fhir.Errorf(fhir.EUnavailable, "", "listing %s ids: %v", typ, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fhir.Errorf(fhir.EUnavailable, "", "listing %s ids: %v", typ, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fhir.Errorf(fhir.EUnavailable, "", "listing %s ids: %s: %.300s", typ, resp.Status, data)
		}
		bundle, err := fhir.ParseObject(data, 0)
		if err != nil {
			return nil, err
		}
		entries, _ := bundle["entry"].([]any)
		for _, e := range entries {
			res, _ := e.(fhir.Object)["resource"].(fhir.Object)
			if id := fhir.ID(res); id != "" && len(ids) < max {
				ids = append(ids, id)
			}
		}
		next = ""
		links, _ := bundle["link"].([]any)
		for _, l := range links {
			if m, _ := l.(fhir.Object); m["relation"] == "next" {
				next, _ = m["url"].(string)
			}
		}
		if len(entries) == 0 {
			break
		}
	}
	if len(ids) == 0 {
		return nil, fhir.Errorf(fhir.ENotFound, "", "the server has no %s to read", typ)
	}
	return ids, nil
}

// Read runs the read-by-id benchmark: Clients goroutines each GET
// {base}/{type}/{id} in a loop over cfg.IDs, or {base}/{path} over
// cfg.Paths (each client starting at a different offset), until
// Warmup+Duration has passed, recording the latency of every request that
// completes inside the measured window.
func Read(ctx context.Context, c *http.Client, cfg Config) (*Result, error) {
	if err := CheckLoopback(cfg.BaseURL); err != nil {
		return nil, err
	}
	targets := cfg.Paths
	if len(targets) == 0 {
		if len(cfg.IDs) == 0 {
			return nil, fhir.Invalid("", "no ids to read")
		}
		targets = make([]string, len(cfg.IDs))
		for i, id := range cfg.IDs {
			targets[i] = cfg.Type + "/" + id
		}
	}
	cfg.Clients = cmp.Or(cfg.Clients, 1)
	cfg.Duration = cmp.Or(cfg.Duration, 10*time.Second)
	if cfg.Duration > MaxDuration || cfg.Warmup > MaxDuration {
		return nil, fhir.Invalid("", "duration over %s", MaxDuration)
	}
	prefix := strings.TrimRight(cfg.BaseURL, "/") + "/"
	u, _ := url.Parse(prefix)
	raw := !cfg.StdClient && u.Scheme == "http"
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	headers := "Host: " + u.Host + "\r\nAccept: application/fhir+json\r\n"
	if cfg.Token != "" {
		headers += "Authorization: Bearer " + cfg.Token + "\r\n"
	}
	if cfg.Gzip {
		headers += "Accept-Encoding: gzip\r\n"
	}
	start := time.Now()
	from := start.Add(cfg.Warmup)
	until := from.Add(cfg.Duration)
	// The hard bound: a request still hanging after the window is abandoned.
	ctx, cancel := context.WithDeadline(ctx, until.Add(5*time.Second))
	defer cancel()

	type client struct {
		samples []time.Duration
		status  map[int]int
	}
	clients := make([]client, cfg.Clients)
	var wg sync.WaitGroup
	for ci := range clients {
		cl := &clients[ci]
		cl.samples = make([]time.Duration, 0, 1<<16)
		cl.status = map[int]int{}
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			rc := &rawClient{addr: addr, deadline: until.Add(5 * time.Second)}
			defer rc.close()
			hdr := []byte(headers)
			var interval time.Duration
			next := start
			if cfg.Rate > 0 {
				interval = time.Duration(float64(cfg.Clients) / cfg.Rate * float64(time.Second))
				next = start.Add(interval * time.Duration(ci) / time.Duration(cfg.Clients))
			}
			for k := ci * len(targets) / cfg.Clients; ; k++ {
				t0 := time.Now()
				if interval > 0 {
					if d := next.Sub(t0); d > 0 {
						time.Sleep(d)
					}
					t0, next = next, next.Add(interval)
				}
				if !t0.Before(until) || ctx.Err() != nil {
					return
				}
				var status int
				if raw {
					status, _ = rc.get(u.Path+targets[k%len(targets)], hdr)
				} else {
					status = get(ctx, c, prefix+targets[k%len(targets)], cfg.Token, buf)
				}
				t1 := time.Now()
				if t0.Before(from) || t1.After(until) {
					continue
				}
				cl.samples = append(cl.samples, t1.Sub(t0))
				cl.status[status]++
			}
		})
	}
	// The machine's CPU time at both ends of the measured window.
	cpuFrom, okFrom := machineAt(ctx, from)
	cpuUntil, okUntil := machineAt(ctx, until)
	wg.Wait()
	if ctx.Err() != nil && !time.Now().After(until) {
		return nil, ctx.Err()
	}
	r := &Result{Clients: cfg.Clients, Rate: cfg.Rate, Elapsed: cfg.Duration, Status: map[int]int{}}
	if okFrom && okUntil {
		r.Machine, r.MachineKnown = cpuUntil.Since(cpuFrom), true
	}
	for _, cl := range clients {
		r.sorted = append(r.sorted, cl.samples...)
		for s, n := range cl.status {
			r.Status[s] += n
			if s != http.StatusOK {
				r.Errors += n
			}
		}
	}
	r.Requests = len(r.sorted)
	slices.Sort(r.sorted)
	return r, nil
}

// machineAt samples the machine's CPU time at t; false if ctx ends first
// or the system does not say.
func machineAt(ctx context.Context, t time.Time) (procs.MachineCPU, bool) {
	select {
	case <-time.After(time.Until(t)):
		return procs.ReadMachineCPU()
	case <-ctx.Done():
		return procs.MachineCPU{}, false
	}
}

// get reads one resource, draining the body so the connection is reused;
// it returns the status, or 0 for a transport failure.
func get(ctx context.Context, c *http.Client, u, token string, buf []byte) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Accept", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	for {
		_, err := resp.Body.Read(buf)
		if err == io.EOF {
			return resp.StatusCode
		}
		if err != nil {
			return 0
		}
	}
}
