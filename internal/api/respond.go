package api

import (
	"compress/gzip"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Response content types. JSON is the only format this server speaks; a
// client that names plain application/json gets that name back (FHIR http
// page: "the server SHOULD respond with the requested mime type").
const (
	contentTypeFHIR = "application/fhir+json; charset=utf-8"
	contentTypeJSON = "application/json; charset=utf-8"
)

// format is how a response is to be written.
type format struct {
	contentType string
	pretty      bool
}

// negotiate chooses the response format from _format (which wins, as the
// specification says) or Accept, and _pretty. A format the server cannot
// produce, such as XML or Turtle, is 406 Not Acceptable.
func negotiate(r *http.Request, q url.Values) (format, error) {
	f := format{contentType: contentTypeFHIR}
	if q != nil {
		switch strings.ToLower(q.Get("_pretty")) {
		case "", "false":
		case "true":
			f.pretty = true
		default:
			return f, fhir.Invalid("", "_pretty must be true or false")
		}
		if v := q.Get("_format"); v != "" {
			// A '+' in a query decodes to a space: "application/fhir+json"
			// arrives as "application/fhir json" from most clients.
			v = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(v)), " ", "+")
			mt, _, _ := strings.Cut(v, ";")
			switch strings.TrimSpace(mt) {
			case "json", "application/fhir+json", "application/json+fhir":
				return f, nil
			case "application/json", "text/json":
				f.contentType = contentTypeJSON
				return f, nil
			}
			return f, errorf(eNotAcceptable, "not-supported", "_format %q is not supported: this server speaks JSON only (json, application/fhir+json, application/json)", truncate(q.Get("_format")))
		}
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		return f, nil
	}
	best, bestQ := "", -1.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, _ := strings.Cut(part, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		qv := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					qv = x
				}
			}
		}
		if qv <= 0 {
			continue
		}
		switch mt {
		case "application/fhir+json", "application/json+fhir", "*/*", "application/*":
			if qv > bestQ {
				best, bestQ = contentTypeFHIR, qv
			}
		case "application/json", "text/json":
			if qv > bestQ {
				best, bestQ = contentTypeJSON, qv
			}
		}
	}
	if best == "" {
		return f, errorf(eNotAcceptable, "not-supported", "none of the types in Accept can be produced: this server speaks application/fhir+json")
	}
	f.contentType = best
	return f, nil
}

// acceptsGzip reports whether the client accepts a gzip-encoded response.
func acceptsGzip(r *http.Request) bool {
	ae := r.Header.Get("Accept-Encoding")
	if ae == "" {
		return false
	}
	for part := range strings.SplitSeq(ae, ",") {
		enc, params, _ := strings.Cut(part, ";")
		enc = strings.TrimSpace(enc)
		if !strings.EqualFold(enc, "gzip") && enc != "*" {
			continue
		}
		p := strings.ReplaceAll(params, " ", "")
		if strings.HasPrefix(p, "q=0") && !strings.ContainsAny(strings.TrimPrefix(p, "q=0"), "123456789") {
			return false
		}
		return true
	}
	return false
}

// gzipMin is the smallest body worth compressing: below about one packet,
// gzip saves nothing and costs time.
const gzipMin = 1400

var gzipWriters = sync.Pool{New: func() any {
	// BestSpeed: large bundles compress about as well and several times
	// faster than at the default level.
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// send writes a whole response: content type, length, compression.
func (h *handler) send(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", stateOf(r).format.contentType)
	hd.Set("Vary", "Accept, Accept-Encoding")
	if len(body) >= gzipMin && r.Method != http.MethodHead && acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		hd.Del("Content-Length")
		w.WriteHeader(status)
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(w)
		_, _ = gz.Write(body)
		_ = gz.Close()
		gz.Reset(nil)
		gzipWriters.Put(gz)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// sendObject encodes a FHIR object (resource or Bundle) and sends it.
func (h *handler) sendObject(w http.ResponseWriter, r *http.Request, status int, o fhir.Object) {
	body := fhir.Marshal(o)
	if stateOf(r).format.pretty {
		body = prettify(body)
	}
	h.send(w, r, status, body)
}

// sendRaw sends stored JSON, indenting it when _pretty asks.
func (h *handler) sendRaw(w http.ResponseWriter, r *http.Request, status int, raw []byte) {
	if stateOf(r).format.pretty {
		raw = prettify(raw)
	}
	h.send(w, r, status, raw)
}

// prettify re-encodes JSON indented. Bundles embed stored resources as raw
// bytes, which MarshalIndent copies verbatim, so the whole document is parsed
// again first; this costs time only when a human asked for _pretty.
func prettify(raw []byte) []byte {
	v, err := fhir.Parse(raw, 100000)
	if err != nil {
		return raw
	}
	return fhir.MarshalIndent(v)
}

// etag is the weak entity tag of a version: W/"n".
func etag(v *store.Version) string {
	return `W/"` + strconv.FormatInt(v.VersionID, 10) + `"`
}

// versionHeaders sets ETag and Last-Modified for v.
func versionHeaders(w http.ResponseWriter, v *store.Version) {
	hd := w.Header()
	hd.Set("ETag", etag(v))
	if !v.LastUpdated.IsZero() {
		hd.Set("Last-Modified", v.LastUpdated.UTC().Format(http.TimeFormat))
	}
}

// versionURL is the absolute URL of one version: BASE/Type/id/_history/n.
func (h *handler) versionURL(v *store.Version) string {
	return h.cfg.BaseURL + "/" + v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
}
