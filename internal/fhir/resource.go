package fhir

import (
	"regexp"
	"strconv"
	"time"
)

// idPattern is the R4 id datatype: 1 to 64 of [A-Za-z0-9\-\.].
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether s is a valid FHIR logical id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// InstantFormat is how sharedcare writes meta.lastUpdated: UTC with
// millisecond precision, which every FHIR instant parser accepts.
const InstantFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatInstant renders t as a FHIR instant in UTC.
func FormatInstant(t time.Time) string { return t.UTC().Format(InstantFormat) }

// ResourceType returns the resourceType of a resource, or "".
func ResourceType(r Object) string { s, _ := r["resourceType"].(string); return s }

// ID returns the id of a resource, or "".
func ID(r Object) string { s, _ := r["id"].(string); return s }

// Meta returns the resource's meta object, creating it when absent.
func Meta(r Object) Object {
	m, ok := r["meta"].(Object)
	if !ok {
		m = Object{}
		r["meta"] = m
	}
	return m
}

// SetVersion stamps meta.versionId and meta.lastUpdated, the two elements the
// server owns on every write.
func SetVersion(r Object, version int64, lastUpdated time.Time) {
	m := Meta(r)
	m["versionId"] = strconv.FormatInt(version, 10)
	m["lastUpdated"] = FormatInstant(lastUpdated)
}

// Clone returns a deep copy of a parsed JSON value.
func Clone(v any) any {
	switch x := v.(type) {
	case Object:
		c := make(Object, len(x))
		for k, val := range x {
			c[k] = Clone(val)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, val := range x {
			c[i] = Clone(val)
		}
		return c
	default:
		return v
	}
}

// Equal reports whether two parsed JSON values are the same: objects with the
// same keys and equal values, arrays equal element by element, and numbers
// equal as written (FHIR decimals carry their precision in their text).
func Equal(a, b any) bool {
	switch x := a.(type) {
	case Object:
		y, ok := b.(Object)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !Equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}
