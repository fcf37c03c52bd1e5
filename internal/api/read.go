package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/store"
)

// resourceType returns the {type} of the path when it names an R4 resource
// type; otherwise it answers 404 (or 405 for the fixed system paths that a
// type pattern also matches, such as POST /fhir/metadata) and returns "".
func (h *handler) resourceType(w http.ResponseWriter, r *http.Request) string {
	typ := r.PathValue("type")
	if r4.IsResource(typ) {
		return typ
	}
	switch typ {
	case "metadata", "_history":
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, errorf(fhir.EMethodNotAllowed, "not-supported", "method %s is not allowed on /fhir/%s", r.Method, typ))
	default:
		h.fail(w, r, errorf(fhir.ENotFound, "not-supported", "unknown resource type %q", truncate(typ)))
	}
	return ""
}

// read is GET /fhir/{type}/{id}. It is the hottest path of the server:
// without _pretty, _elements or _summary the stored bytes go to the client
// untouched, without a parse or an encode.
func (h *handler) read(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	v, err := h.svc.Read(r.Context(), typ, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.sendVersion(w, r, v)
}

// vread is GET /fhir/{type}/{id}/_history/{vid}.
func (h *handler) vread(w http.ResponseWriter, r *http.Request) {
	typ := h.resourceType(w, r)
	if typ == "" {
		return
	}
	v, err := h.svc.VRead(r.Context(), typ, r.PathValue("id"), r.PathValue("vid"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.sendVersion(w, r, v)
}

// sendVersion answers a read of v: 304 when the client's copy is current,
// else the resource with its ETag and Last-Modified.
func (h *handler) sendVersion(w http.ResponseWriter, r *http.Request, v *store.Version) {
	if v.Deleted {
		h.fail(w, r, fhir.Errorf(fhir.EGone, "", "%s/%s was deleted", v.Type, v.ID))
		return
	}
	// A 304 discloses that the client's copy is current: the same record.
	h.noteVersion(r, v, false)
	versionHeaders(w, v)
	if notModified(r, v) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	q := stateOf(r).query
	if q.Has("_elements") || q.Has("_summary") {
		o, err := fhir.ParseObject(v.Body, 100000)
		if err != nil {
			h.fail(w, r, fhir.Internal(err))
			return
		}
		o, err = subset(o, q)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.sendObject(w, r, http.StatusOK, o)
		return
	}
	h.sendRaw(w, r, http.StatusOK, v.Body)
}

// notModified applies If-None-Match (which wins when present, RFC 9110
// §13.2.2) and If-Modified-Since to a read.
func notModified(r *http.Request, v *store.Version) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		tag := etag(v)[2:] // the opaque part, "n" with quotes
		for cand := range strings.SplitSeq(inm, ",") {
			cand = strings.TrimSpace(cand)
			if cand == "*" || strings.TrimPrefix(cand, "W/") == tag {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && !v.LastUpdated.IsZero() {
		t, err := http.ParseTime(ims)
		if err != nil {
			return false
		}
		// HTTP dates have whole seconds; meta.lastUpdated has milliseconds.
		return !v.LastUpdated.Truncate(time.Second).After(t)
	}
	return false
}

// subset applies _elements and _summary to a resource read (FHIR search
// page, 3.1.1.5.x): the mandatory resourceType, id and meta are always kept
// and the result is tagged SUBSETTED so it is not mistaken for the whole.
func subset(o fhir.Object, q map[string][]string) (fhir.Object, error) {
	typ := fhir.ResourceType(o)
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	switch s := first(q["_summary"]); s {
	case "", "false":
	case "text":
		keep["text"] = true
		return pick(o, keep), nil
	case "data":
		out := fhir.Object{}
		for k, v := range o {
			if k != "text" {
				out[k] = v
			}
		}
		return tagSubsetted(out), nil
	case "true":
		t := r4.Lookup(typ)
		if t == nil {
			return nil, fhir.Internal(nil)
		}
		for k := range o {
			if el, _, ok := t.Child("", strings.TrimPrefix(k, "_")); ok && el.Summary {
				keep[k] = true
			}
		}
		return pick(o, keep), nil
	default:
		return nil, fhir.Invalid("", "_summary %q is not supported on read: use true, text, data or false", truncate(s))
	}
	if els := first(q["_elements"]); els != "" {
		for e := range strings.SplitSeq(els, ",") {
			if e = strings.TrimSpace(e); e != "" {
				keep[e] = true
			}
		}
		return pick(o, keep), nil
	}
	return o, nil
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func pick(o fhir.Object, keep map[string]bool) fhir.Object {
	out := fhir.Object{}
	for k, v := range o {
		if keep[k] || (len(k) > 1 && k[0] == '_' && keep[k[1:]]) {
			out[k] = v
		}
	}
	return tagSubsetted(out)
}

// tagSubsetted marks a partial resource, as the specification requires.
func tagSubsetted(o fhir.Object) fhir.Object {
	meta := fhir.Object{}
	if m, ok := o["meta"].(fhir.Object); ok {
		for k, v := range m {
			meta[k] = v
		}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(append([]any(nil), tags...), fhir.Object{
		"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
		"code":   "SUBSETTED",
	})
	o["meta"] = meta
	return o
}
