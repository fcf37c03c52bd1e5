package engine

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// Create stores a new resource under a server-assigned id (FHIR
// http.html#create: any id in the body is ignored). With o.IfNoneExist it is
// a conditional create: no match creates, one match returns that resource
// unchanged (NoOp), more than one is 412. The search and the write share one
// store transaction, so on a single-writer store two identical conditional
// creates cannot both create.
func (e *Engine) Create(ctx context.Context, typ string, body []byte, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	res, err := parseResource(typ, body)
	if err != nil {
		return nil, err
	}
	delete(res, "id")
	warnings, err := validate.Resource(res, validate.Options{Lenient: o.Lenient || e.cfg.Lenient})
	if err != nil {
		return nil, err
	}
	now := e.now()
	if o.IfNoneExist == "" {
		// The common case: everything is prepared before the store
		// transaction, which then only writes.
		p := e.newPut(typ, newID(), 1, res, now)
		if err := e.write(ctx, func(tx store.Tx) error { return put(ctx, tx, p) }); err != nil {
			return nil, err
		}
		return &Outcome{Version: versionOf(p), Created: true, Warnings: warnings}, nil
	}
	cond, err := conditionalCriteria(typ, o.IfNoneExist)
	if err != nil {
		return nil, err
	}
	derived, err := e.conditionalID(ctx, typ, cond)
	if err != nil {
		return nil, err
	}
	var out *Outcome
	err = e.write(ctx, func(tx store.Tx) error {
		out = nil
		m, err := matchConditional(ctx, tx, typ, cond)
		if err != nil {
			return err
		}
		if len(m) > 1 {
			return fhir.Errorf(fhir.EPreconditionFailed, "", "If-None-Exist matches more than one %s", typ)
		}
		if len(m) == 1 {
			out = &Outcome{Version: m[0], NoOp: true, Warnings: warnings}
			return nil
		}
		id, version, err := createTarget(ctx, tx, typ, derived, cond)
		if err != nil {
			return err
		}
		p := e.newPut(typ, id, version, res, now)
		if err := put(ctx, tx, p); err != nil {
			return err
		}
		out = &Outcome{Version: versionOf(p), Created: true, Warnings: warnings}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update writes a new version of typ/id, or creates it with that id when it
// does not exist or was deleted (update as create, 201). The body's id must
// be present and equal the URL's. With If-Match the current version must be
// the one named, else 412; a resource that does not exist (or is deleted)
// has no version to match, so If-Match then fails too (RFC 9110 13.1.1).
// An update whose content equals the current version is not written (NoOp)
// and returns the current version: feeds that re-send unchanged
// Organizations and Practitioners would otherwise grow history without end.
func (e *Engine) Update(ctx context.Context, typ, id string, body []byte, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	ifMatch, err := parseIfMatch(o.IfMatch)
	if err != nil {
		return nil, err
	}
	res, err := parseResource(typ, body)
	if err != nil {
		return nil, err
	}
	bid, ok := res["id"].(string)
	if !ok {
		return nil, fhir.Invalid(typ+".id", "the resource in an update must have an id (equal to the id in the URL)")
	}
	if bid != id {
		return nil, fhir.Invalid(typ+".id", "the resource id %q does not match the id %q in the URL", trunc(bid), id)
	}
	warnings, err := validate.Resource(res, validate.Options{Lenient: o.Lenient || e.cfg.Lenient})
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out *Outcome
	err = e.write(ctx, func(tx store.Tx) error {
		var err error
		out, err = e.putResource(ctx, tx, typ, id, res, ifMatch, now, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	out.Warnings = warnings
	return out, nil
}

// ConditionalUpdate updates the resource matching q (FHIR
// http.html#cond-update): no match creates (with the body's id if it has
// one, else a server id; if a resource with the body's id exists but did not
// match, 409), one match updates it (the body's id, if given, must be its
// id), more than one is 412.
func (e *Engine) ConditionalUpdate(ctx context.Context, typ string, q url.Values, body []byte, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if _, err := parseSearch(typ, q, true, true); err != nil {
		return nil, err
	}
	ifMatch, err := parseIfMatch(o.IfMatch)
	if err != nil {
		return nil, err
	}
	res, err := parseResource(typ, body)
	if err != nil {
		return nil, err
	}
	bid, hasID := res["id"].(string)
	if _, present := res["id"]; present && (!hasID || !fhir.ValidID(bid)) {
		return nil, fhir.Invalid(typ+".id", "invalid resource id")
	}
	warnings, err := validate.Resource(res, validate.Options{Lenient: o.Lenient || e.cfg.Lenient})
	if err != nil {
		return nil, err
	}
	derived, err := e.conditionalID(ctx, typ, q)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out *Outcome
	err = e.write(ctx, func(tx store.Tx) error {
		out = nil
		id, mustNotExist, err := resolveConditionalUpdate(ctx, tx, typ, q, bid, derived)
		if err != nil {
			return err
		}
		out, err = e.putResource(ctx, tx, typ, id, res, ifMatch, now, mustNotExist)
		return err
	})
	if err != nil {
		return nil, err
	}
	out.Warnings = warnings
	return out, nil
}

// resolveConditionalUpdate finds the id a conditional update writes to.
// mustNotExist is set when no resource matched but the body named an id: a
// resource with that id that exists (and so did not match) is a 409.
//
// With neither a match nor a body id it creates under the id derived from
// the criteria (see conditionalID), unless a live resource that does not
// match holds that id.
func resolveConditionalUpdate(ctx context.Context, tx store.Tx, typ string, q url.Values, bodyID, derived string) (id string, mustNotExist bool, err error) {
	m, err := matchConditional(ctx, tx, typ, q)
	if err != nil {
		return "", false, err
	}
	switch {
	case len(m) > 1:
		return "", false, fhir.Errorf(fhir.EPreconditionFailed, "", "the conditional update criteria match more than one %s", typ)
	case len(m) == 1:
		if bodyID != "" && bodyID != m[0].ID {
			return "", false, fhir.Invalid(typ+".id", "the resource id %q differs from the id %q of the resource the criteria match", trunc(bodyID), m[0].ID)
		}
		return m[0].ID, false, nil
	case bodyID != "":
		return bodyID, true, nil
	default:
		id, _, err := createTarget(ctx, tx, typ, derived, q)
		return id, false, err
	}
}

// putResource writes res as the next version of typ/id inside tx, honouring
// If-Match and skipping a write that would change nothing.
func (e *Engine) putResource(ctx context.Context, tx store.Tx, typ, id string, res fhir.Object, ifMatch int64, now time.Time, mustNotExist bool) (*Outcome, error) {
	cur, err := readForUpdate(ctx, tx, typ, id)
	if err != nil {
		return nil, err
	}
	if err := checkIfMatch(ifMatch, cur, typ, id); err != nil {
		return nil, err
	}
	if mustNotExist && cur != nil && !cur.Deleted {
		return nil, fhir.Errorf(fhir.EConflict, "", "%s/%s exists but does not match the conditional update criteria", typ, id)
	}
	res["id"] = id
	e.stampSource(res)
	p := &store.Put{Type: typ, ID: id, VersionID: 1, LastUpdated: now, Index: e.ix.Index(typ, res)}
	if cur != nil {
		p.VersionID = cur.VersionID + 1
		if !cur.Deleted {
			// Same content as stored? Encode it as the current version
			// would be and compare bytes: Marshal is canonical, so equal
			// content gives equal bytes, and nothing is parsed.
			fhir.SetVersion(res, cur.VersionID, cur.LastUpdated)
			if bytes.Equal(fhir.Marshal(res), cur.Body) {
				return &Outcome{Version: cur, NoOp: true}, nil
			}
		}
	}
	fhir.SetVersion(res, p.VersionID, now)
	p.Body = fhir.Marshal(res)
	if err := put(ctx, tx, p); err != nil {
		return nil, err
	}
	return &Outcome{Version: versionOf(p), Created: cur == nil || cur.Deleted}, nil
}

// Delete writes a deletion marker as the next version (versioned delete; a
// read afterwards is 410 and vread of earlier versions still works).
// Deleting a resource that does not exist or is already deleted succeeds
// without writing (NoOp; Version is nil when nothing ever existed, the
// deletion marker when it was already deleted), as FHIR http.html#delete
// allows. If-Match is honoured.
func (e *Engine) Delete(ctx context.Context, typ, id string, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	ifMatch, err := parseIfMatch(o.IfMatch)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out *Outcome
	err = e.write(ctx, func(tx store.Tx) error {
		var err error
		out, err = deleteResource(ctx, tx, typ, id, ifMatch, now)
		return err
	})
	return out, err
}

// ConditionalDelete deletes the one resource matching q: no match is a NoOp,
// more than one is 412 (single-match mode, conditionalDelete "single" in the
// CapabilityStatement).
func (e *Engine) ConditionalDelete(ctx context.Context, typ string, q url.Values, o WriteOptions) (*Outcome, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if _, err := parseSearch(typ, q, true, true); err != nil {
		return nil, err
	}
	ifMatch, err := parseIfMatch(o.IfMatch)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out *Outcome
	err = e.write(ctx, func(tx store.Tx) error {
		out = nil
		m, err := matchConditional(ctx, tx, typ, q)
		if err != nil {
			return err
		}
		switch len(m) {
		case 0:
			out = &Outcome{NoOp: true}
			return nil
		case 1:
			out, err = deleteResource(ctx, tx, typ, m[0].ID, ifMatch, now)
			return err
		default:
			return fhir.Errorf(fhir.EPreconditionFailed, "", "the conditional delete criteria match more than one %s", typ)
		}
	})
	return out, err
}

func deleteResource(ctx context.Context, tx store.Tx, typ, id string, ifMatch int64, now time.Time) (*Outcome, error) {
	cur, err := readForUpdate(ctx, tx, typ, id)
	if err != nil {
		return nil, err
	}
	if err := checkIfMatch(ifMatch, cur, typ, id); err != nil {
		return nil, err
	}
	if cur == nil {
		return &Outcome{NoOp: true}, nil
	}
	if cur.Deleted {
		return &Outcome{Version: cur, NoOp: true}, nil
	}
	p := &store.Put{Type: typ, ID: id, VersionID: cur.VersionID + 1, LastUpdated: now, Deleted: true}
	if err := put(ctx, tx, p); err != nil {
		return nil, err
	}
	return &Outcome{Version: versionOf(p)}, nil
}

// parseResource parses a request body as a resource of type typ.
func parseResource(typ string, body []byte) (fhir.Object, error) {
	res, err := fhir.ParseObject(body, 0)
	if err != nil {
		return nil, err
	}
	return res, checkResourceType(typ, res, typ)
}

// checkResourceType requires res.resourceType to be typ (FHIR: the type in
// the body must match the URL).
func checkResourceType(typ string, res fhir.Object, expr string) error {
	rt, ok := res["resourceType"].(string)
	if !ok {
		return fhir.Invalid(expr, "the resource has no resourceType")
	}
	if rt != typ {
		return fhir.Invalid(expr+".resourceType", "resourceType %q does not match the type %q in the URL", trunc(rt), typ)
	}
	return nil
}

// conditionalCriteria parses and checks an If-None-Exist query.
func conditionalCriteria(typ, raw string) (url.Values, error) {
	raw = strings.TrimPrefix(raw, "?")
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		// Some clients send "Type?criteria"; accept it when the type agrees.
		if raw[:i] != typ {
			return nil, fhir.Invalid("", "If-None-Exist criteria %q are for another type", trunc(raw))
		}
		raw = raw[i+1:]
	}
	q, err := parseConditional(raw)
	if err != nil {
		return nil, err
	}
	if _, err := parseSearch(typ, q, true, true); err != nil {
		return nil, err
	}
	return q, nil
}

// newPut prepares a version of a new resource (1, unless it re-creates a
// deleted one): id and meta stamped, encoded and indexed.
func (e *Engine) newPut(typ, id string, version int64, res fhir.Object, now time.Time) *store.Put {
	res["id"] = id
	e.stampSource(res)
	fhir.SetVersion(res, version, now)
	return &store.Put{Type: typ, ID: id, VersionID: version, LastUpdated: now, Body: fhir.Marshal(res), Index: e.ix.Index(typ, res)}
}

// stampSource sets meta.source to Config.Source on a resource that names
// no source of its own.
func (e *Engine) stampSource(res fhir.Object) {
	if e.cfg.Source == "" {
		return
	}
	if s, _ := fhir.Meta(res)["source"].(string); s == "" {
		fhir.Meta(res)["source"] = e.cfg.Source
	}
}

func versionOf(p *store.Put) *store.Version {
	return &store.Version{Type: p.Type, ID: p.ID, VersionID: p.VersionID, LastUpdated: p.LastUpdated, Deleted: p.Deleted, Body: p.Body}
}

// readForUpdate reads the current version inside tx; nil when none exists.
func readForUpdate(ctx context.Context, tx store.Tx, typ, id string) (*store.Version, error) {
	cur, err := tx.Read(ctx, typ, id)
	if fhir.IsKind(err, fhir.ENotFound) {
		return nil, nil
	}
	return cur, err
}

// anyVersion is the parsed form of "If-Match: *".
const anyVersion = -1

// parseIfMatch parses an If-Match header: W/"3", "3" (and, leniently, 3) or
// *. It returns 0 when the header is absent.
func parseIfMatch(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if s == "*" {
		return anyVersion, nil
	}
	t := strings.TrimPrefix(s, "W/")
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Invalid("", "If-Match %q is not a version ETag such as W/\"3\"", trunc(s))
	}
	return n, nil
}

// checkIfMatch applies If-Match to the current version (nil if none).
func checkIfMatch(want int64, cur *store.Version, typ, id string) error {
	if want == 0 {
		return nil
	}
	if cur == nil || cur.Deleted {
		return fhir.Errorf(fhir.EPreconditionFailed, "", "If-Match: %s/%s has no current version", typ, id)
	}
	if want != anyVersion && want != cur.VersionID {
		return fhir.Errorf(fhir.EPreconditionFailed, "", "If-Match: version %d is not the current version %d of %s/%s", want, cur.VersionID, typ, id)
	}
	return nil
}

// retryError marks a version clash reported by the store: another writer
// got in between our read and our put, so the whole write is run again on
// fresh data (where If-Match, if any, then fails properly with 412).
type retryError struct{ err error }

func (r *retryError) Error() string { return "retry: " + r.err.Error() }

// maxAttempts bounds how often a write is retried after version clashes.
const maxAttempts = 10

// put is tx.Put with version clashes marked for retry.
func put(ctx context.Context, tx store.Tx, p *store.Put) error {
	err := tx.Put(ctx, p)
	if fhir.IsKind(err, fhir.EConflict) {
		return &retryError{err}
	}
	return err
}

// write runs fn in a store transaction, again when it hit a version clash.
func (e *Engine) write(ctx context.Context, fn func(tx store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := e.st.Write(ctx, func(tx store.Tx) error { return fn(tx) })
		var r *retryError
		if !errors.As(err, &r) {
			return err
		}
		if attempt == maxAttempts || ctx.Err() != nil {
			return fhir.Errorf(fhir.EConflict, "", "the resource was changed concurrently; retry the request")
		}
	}
}
