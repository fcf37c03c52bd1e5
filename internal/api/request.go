package api

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Media types accepted in request bodies.
var (
	resourceTypes = []string{"application/fhir+json", "application/json", "application/json+fhir"}
	patchTypes    = []string{"application/json-patch+json"}
	formTypes     = []string{"application/x-www-form-urlencoded"}
)

// readBody checks the Content-Type of r against allowed (415 otherwise),
// undoes a gzip Content-Encoding, and reads the body, refusing more than
// MaxBodyBytes (413) both before and after decompression: the second bound
// is what stops a small gzip bomb from expanding into memory.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, allowed []string) ([]byte, error) {
	return h.readAny(w, r, allowed, false)
}

// readAny is readBody, optionally accepting an empty body.
func (h *handler) readAny(w http.ResponseWriter, r *http.Request, allowed []string, emptyOK bool) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, errorf(fhir.EUnsupportedMedia, "not-supported", "Content-Type is missing: send %s", allowed[0])
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, errorf(fhir.EUnsupportedMedia, "not-supported", "Content-Type %q is malformed", truncate(ct))
	}
	ok := false
	for _, a := range allowed {
		ok = ok || mt == a
	}
	if !ok {
		return nil, errorf(fhir.EUnsupportedMedia, "not-supported", "Content-Type %q is not supported here: send %s", truncate(mt), strings.Join(allowed, " or "))
	}
	if cs, has := params["charset"]; has && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, errorf(fhir.EUnsupportedMedia, "not-supported", "charset %q is not supported: FHIR JSON is UTF-8", truncate(cs))
	}

	limit := h.cfg.MaxBodyBytes
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError(err, "the gzip body is malformed")
		}
		defer gz.Close()
		src = gz
	default:
		return nil, errorf(fhir.EUnsupportedMedia, "not-supported", "Content-Encoding %q is not supported: use gzip or none", truncate(enc))
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(src, limit+1))
	if err != nil {
		return nil, bodyError(err, "the request body could not be read")
	}
	if n > limit {
		return nil, tooLarge(limit)
	}
	if n == 0 && !emptyOK {
		return nil, fhir.Invalid("", "the request body is empty")
	}
	if err := checkDepth(buf.Bytes(), h.cfg.MaxDepth); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkDepth refuses JSON nested deeper than max (--max-depth) before any
// parser sees it: a cheap byte scan at the edge, like the size limit. The
// engine's parser keeps its own bound (fhir.DefaultMaxDepth) as well.
func checkDepth(b []byte, max int) error {
	if max <= 0 {
		return nil
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return fhir.Invalid("", "JSON nesting deeper than %d levels", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func tooLarge(limit int64) error {
	return errorf(fhir.ETooLarge, "too-costly", "the request body is larger than the limit of %d bytes", limit)
}

// bodyError classifies a failure to read the body: over the limit (413),
// else malformed input (400).
func bodyError(err error, msg string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	e := fhir.Invalid("", "%s", msg)
	e.Err = err
	return e
}

// prefer is the parsed Prefer header (RFC 7240; FHIR http page).
type prefer struct {
	ret      string // "minimal", "representation", "OperationOutcome" or ""
	lenient  bool   // handling=lenient
	strict   bool   // handling=strict
	async    bool   // respond-async (not supported)
	returnOK bool   // the return preference was recognised
}

// parsePrefer reads every Prefer header. Unknown preferences are ignored,
// as RFC 7240 requires.
func parsePrefer(r *http.Request) prefer {
	var p prefer
	for _, hv := range r.Header.Values("Prefer") {
		for part := range strings.SplitSeq(hv, ",") {
			pref, _, _ := strings.Cut(part, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(pref), "=")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "return":
				switch strings.ToLower(v) {
				case "minimal":
					p.ret, p.returnOK = "minimal", true
				case "representation":
					p.ret, p.returnOK = "representation", true
				case "operationoutcome":
					p.ret, p.returnOK = "OperationOutcome", true
				}
			case "handling":
				switch strings.ToLower(v) {
				case "lenient":
					p.lenient, p.strict = true, false
				case "strict":
					p.strict, p.lenient = true, false
				}
			case "respond-async":
				p.async = true
			}
		}
	}
	return p
}

// writeOptions gathers the request-level switches of a write. Lenient
// handling is the client's Prefer ORed with the server flag, except that a
// client's explicit handling=strict wins over the server default.
func (h *handler) writeOptions(r *http.Request, p prefer) engine.WriteOptions {
	return engine.WriteOptions{
		Lenient:     p.lenient || (h.cfg.Lenient && !p.strict),
		IfMatch:     r.Header.Get("If-Match"),
		IfNoneExist: strings.TrimPrefix(r.Header.Get("If-None-Exist"), "?"),
	}
}
