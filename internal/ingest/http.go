package ingest

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// HTTPOptions are the switches of an HTTP sink.
type HTTPOptions struct {
	Token   string        // bearer token; "" sends no Authorization header
	Lenient bool          // send Prefer: handling=lenient
	Gzip    bool          // gzip request bodies (Content-Encoding: gzip)
	Retries int           // further attempts after a 429, 503 or connection error; 0 means 6, negative none
	Timeout time.Duration // per attempt; 0 means 5 minutes (a large transaction on a slow disk)
	Conns   int           // keep-alive connections to hold; 0 means 8
	// Sleep waits between attempts; nil waits on a timer. Tests replace it to
	// run retries without real delays.
	Sleep func(ctx context.Context, d time.Duration) error
}

// HTTP is a Sink that posts bundles to a FHIR server's base URL.
type HTTP struct {
	base   string
	opt    HTTPOptions
	client *http.Client
}

// NewHTTP returns a sink posting to base, the server's FHIR base URL
// (e.g. http://127.0.0.1:8080/fhir).
func NewHTTP(base string, opt HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fhir.Invalid("", "--url %q is not an http(s) URL of a FHIR base", base)
	}
	if opt.Retries == 0 {
		opt.Retries = 6
	}
	opt.Timeout = cmp.Or(opt.Timeout, 5*time.Minute)
	opt.Conns = cmp.Or(opt.Conns, 8)
	if opt.Sleep == nil {
		opt.Sleep = sleep
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// One kept-alive connection per worker: a new TCP connection per
	// bundle would cost more than a small bundle's transaction.
	tr.MaxIdleConnsPerHost = opt.Conns
	tr.MaxIdleConns = opt.Conns
	// No Accept-Encoding: gzip. The loader discards transaction responses,
	// and profiling the server during the Synthea load showed 5% of its CPU
	// compressing them (it answers with every resource, ~300 KB a bundle).
	tr.DisableCompression = true
	return &HTTP{base: strings.TrimRight(base, "/"), opt: opt, client: &http.Client{Transport: tr}}, nil
}

// Close drops the kept-alive connections.
func (h *HTTP) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

// unreachableError is a transport failure that outlived the retries.
type unreachableError struct{ err error }

func (u *unreachableError) Error() string { return "server unreachable: " + u.err.Error() }
func (u *unreachableError) Unwrap() error { return u.err }

// Bundle posts body to the base URL, retrying with exponential backoff (or
// the server's Retry-After) on 429, 502, 503, 504 and connection errors.
// A refusal is returned as a *fhir.Error carrying the server's
// OperationOutcome issues.
//
// A retried POST transaction is not idempotent in general: if the server
// committed it but the connection broke before the answer, it is applied
// twice. Batches built from NDJSON use PUT with the resource id, so for them
// a retry is harmless.
func (h *HTTP) Bundle(ctx context.Context, body []byte, want bool) (fhir.Object, error) {
	payload := body
	if h.opt.Gzip {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(body)
		zw.Close()
		payload = buf.Bytes()
	}
	for attempt := 0; ; attempt++ {
		resp, retryAfter, err := h.post(ctx, payload, want)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if retryAfter < 0 || h.opt.Retries < 0 || attempt >= h.opt.Retries {
			var netErr *transportError
			if errors.As(err, &netErr) {
				return nil, &unreachableError{err: netErr.err}
			}
			return nil, err
		}
		d := backoff(attempt)
		if retryAfter > 0 {
			d = min(retryAfter, time.Minute)
		}
		if err := h.opt.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// transportError is a failure below HTTP: refused or reset connection,
// timeout.
type transportError struct{ err error }

func (t *transportError) Error() string { return t.err.Error() }
func (t *transportError) Unwrap() error { return t.err }

// post makes one attempt. retryAfter is negative when the failure is final,
// zero for a retry at the default backoff, positive for the server's
// Retry-After.
func (h *HTTP) post(ctx context.Context, payload []byte, want bool) (fhir.Object, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base, bytes.NewReader(payload))
	if err != nil {
		return nil, -1, fhir.Invalid("", "bad request: %v", err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	// The loader never looks at the stored resources: minimal spares the
	// server encoding them, and a batch response still carries each entry's
	// status and OperationOutcome.
	prefer := "return=minimal"
	if h.opt.Lenient {
		prefer += ", handling=lenient"
	}
	req.Header.Set("Prefer", prefer)
	if h.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.opt.Token)
	}
	if h.opt.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, 0, &transportError{err: fmt.Errorf("no answer within %s", h.opt.Timeout)}
		}
		return nil, 0, &transportError{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		if !want {
			// Drain so the connection goes back to the pool.
			_, err := io.Copy(io.Discard, resp.Body)
			if err != nil {
				return nil, 0, &transportError{err: err}
			}
			return nil, 0, nil
		}
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, 0, &transportError{err: err}
		}
		obj, err := fhir.ParseObject(data, 0)
		if err != nil {
			return nil, -1, fhir.Errorf(fhir.EInternal, "", "server answered %s with a body that is not FHIR JSON: %v", resp.Status, err)
		}
		return obj, 0, nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	ferr := &fhir.Error{Kind: kindOf(resp.StatusCode)}
	if oo, err := fhir.ParseObject(data, 0); err == nil && fhir.ResourceType(oo) == "OperationOutcome" {
		ferr.Issues = issuesOf(oo)
	}
	if len(ferr.Issues) == 0 {
		text := strings.TrimSpace(string(data))
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		ferr.Issues = []fhir.Issue{{Severity: fhir.SeverityError, Code: "exception", Diagnostics: cmp.Or(text, resp.Status)}}
	}
	ferr.Err = fmt.Errorf("HTTP %d", resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return nil, retryAfterOf(resp.Header.Get("Retry-After")), ferr
	}
	return nil, -1, ferr
}

// retryAfterOf parses Retry-After (delay-seconds or an HTTP date); zero when
// absent or unreadable.
func retryAfterOf(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return max(time.Duration(s)*time.Second, time.Millisecond)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), time.Millisecond)
	}
	return 0
}

// backoff is the wait before retry attempt+1: 250 ms doubling to at most
// 15 s, with jitter so that workers throttled together do not return together.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 6)
	d = min(d, 15*time.Second)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kindOf maps an HTTP status back to the error kind it stands for.
func kindOf(status int) fhir.Kind {
	for k, s := range statuses {
		if s == status {
			return k
		}
	}
	if status/100 == 4 {
		return fhir.EInvalid
	}
	return fhir.EInternal
}

// statuses is the kind-to-status table of the API, used to name a failure
// by its HTTP status.
var statuses = map[fhir.Kind]int{
	fhir.EInvalid:            400,
	fhir.EUnauthorized:       401,
	fhir.EForbidden:          403,
	fhir.ENotFound:           404,
	fhir.EMethodNotAllowed:   405,
	fhir.EConflict:           409,
	fhir.EGone:               410,
	fhir.EPreconditionFailed: 412,
	fhir.ETooLarge:           413,
	fhir.EUnsupportedMedia:   415,
	fhir.EUnprocessable:      422,
	fhir.ETooManyRequests:    429,
	fhir.EInternal:           500,
	fhir.ENotSupported:       501,
	fhir.EUnavailable:        503,
}

// statusText names a failure by its HTTP status ("HTTP 422") when it came
// over HTTP, else by its kind.
func statusText(e *fhir.Error) string {
	if e.Err != nil && strings.HasPrefix(e.Err.Error(), "HTTP ") {
		return e.Err.Error()
	}
	return string(e.Kind)
}
