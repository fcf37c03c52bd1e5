package engine

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// History returns a history Bundle, newest version first: of one resource
// (typ and id set), of a type (id ""), or of the whole system (both "").
// Parameters: _since (an instant; versions updated at or after it), _count
// (default 50, at most 1000) and _cursor, the opaque page cursor the next
// link carries. The cursor is the store sequence number of the last version
// on the page, so paging never skips or repeats a version even while writes
// go on. Unknown parameters are ignored, or a 400 under strict handling;
// _at and _list are rejected as not supported.
func (e *Engine) History(ctx context.Context, typ, id string, q url.Values) (fhir.Object, error) {
	if typ != "" {
		if err := checkType(typ); err != nil {
			return nil, err
		}
	}
	if id != "" {
		if typ == "" {
			return nil, fhir.Invalid("", "instance history needs a resource type")
		}
		if err := checkID(id); err != nil {
			return nil, err
		}
	}
	if readAccessFilter(ctx) != nil && id != "" {
		// Under an access filter (WithAccess) the current version decides
		// visibility; type and system history are filtered the same way
		// below (access_history.go).
		if err := e.visible(ctx, typ, id); err != nil {
			return nil, err
		}
	}
	hq := store.HistoryQuery{Type: typ, ID: id}
	count := DefaultCount
	used := url.Values{}
	for name, vals := range q {
		v := last(vals)
		switch name {
		case "_since":
			t, err := parseInstant(v)
			if err != nil {
				return nil, err
			}
			hq.Since = t
			used.Set(name, v)
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fhir.Invalid("", "_count must be a positive integer, not %q", trunc(v))
			}
			count = min(n, MaxCount)
			used.Set(name, strconv.Itoa(count))
		case "_cursor":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return nil, fhir.Invalid("", "invalid _cursor %q", trunc(v))
			}
			hq.Before = n
		case "_format", "_pretty":
		case "_at", "_list", "_sort":
			return nil, fhir.Errorf(fhir.ENotSupported, "", "history parameter %q is not supported", name)
		default:
			if strictHandling(ctx) {
				return nil, fhir.Invalid("", "unknown history parameter %q", trunc(name))
			}
		}
	}
	if id != "" {
		// Instance history of something that never existed is a 404, not
		// an empty Bundle.
		if _, err := e.st.Read(ctx, typ, id); err != nil {
			return nil, notFound(err, typ, id)
		}
	}
	hq.Count = count + 1 // one more tells whether there is a next page
	var vs []*store.Version
	var err error
	var stopped int64 // a filtered page that stopped scanning: where to go on
	if f := accessFilter(ctx); f != nil && id == "" {
		vs, stopped, err = e.filteredHistory(ctx, hq, count, f)
	} else {
		vs, err = e.st.History(ctx, hq)
	}
	if err != nil {
		return nil, err
	}
	base := e.cfg.BaseURL
	switch {
	case id != "":
		base += "/" + typ + "/" + id + "/_history"
	case typ != "":
		base += "/" + typ + "/_history"
	default:
		base += "/_history"
	}
	self := used
	if hq.Before != 0 {
		self = cloneValues(used)
		self.Set("_cursor", strconv.FormatInt(hq.Before, 10))
	}
	links := []any{fhir.Object{"relation": "self", "url": linkURL(base, self, "")}}
	if len(vs) > count {
		vs = vs[:count]
		links = append(links, fhir.Object{"relation": "next", "url": linkURL(base, used, strconv.FormatInt(vs[len(vs)-1].Seq, 10))})
	} else if stopped != 0 {
		links = append(links, fhir.Object{"relation": "next", "url": linkURL(base, used, strconv.FormatInt(stopped, 10))})
	}
	entries := make([]any, len(vs))
	for i, v := range vs {
		entries[i] = e.historyEntry(v)
	}
	b := fhir.Object{"resourceType": "Bundle", "type": "history", "link": links}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	return b, nil
}

// historyEntry renders one version. The store keeps no record of the method
// that wrote a version, so it is inferred: version 1 was a create (POST),
// a deletion marker a DELETE, anything else an update (PUT).
func (e *Engine) historyEntry(v *store.Version) fhir.Object {
	vs := strconv.FormatInt(v.VersionID, 10)
	resp := fhir.Object{
		"etag":         `W/"` + vs + `"`,
		"lastModified": fhir.FormatInstant(v.LastUpdated),
	}
	ent := fhir.Object{"fullUrl": e.fullURL(v.Type, v.ID), "response": resp}
	switch {
	case v.Deleted:
		ent["request"] = fhir.Object{"method": "DELETE", "url": v.Type + "/" + v.ID}
		resp["status"] = "204 No Content"
	case v.VersionID == 1:
		ent["request"] = fhir.Object{"method": "POST", "url": v.Type}
		resp["status"] = "201 Created"
		resp["location"] = v.Type + "/" + v.ID + "/_history/" + vs
		ent["resource"] = json.RawMessage(v.Body)
	default:
		ent["request"] = fhir.Object{"method": "PUT", "url": v.Type + "/" + v.ID}
		resp["status"] = "200 OK"
		resp["location"] = v.Type + "/" + v.ID + "/_history/" + vs
		ent["resource"] = json.RawMessage(v.Body)
	}
	return ent
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vals := range v {
		c[k] = vals
	}
	return c
}

// parseInstant parses a FHIR instant (or, leniently, a dateTime with a time
// zone, or a date, taken as midnight UTC) for _since.
func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fhir.Invalid("", "_since must be an instant such as 2024-01-31T12:00:00Z, not %q", trunc(s))
}
