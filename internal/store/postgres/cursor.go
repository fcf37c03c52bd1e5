package postgres

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// cursor is a position in a query's order: a row's sort values and rid.
// back marks a cursor for the page before that row.
type cursor struct {
	back bool
	vals []any // int64, float64, string or nil, one per sort key
	rid  int64
}

// wireCursor is a cursor as encoded: "c" + base64url(JSON). Values carry
// their type ("i", "f", "s", "t" (an instant) prefix; null) so that the keyset compares like
// with like; H is a hash of the sort keys, so a cursor is refused by a
// query that orders differently.
type wireCursor struct {
	B bool      `json:"b,omitempty"`
	V []*string `json:"v,omitempty"`
	R int64     `json:"r"`
	H uint32    `json:"h"`
}

func sortHash(keys []store.SortKey) uint32 {
	h := fnv.New32a()
	for _, k := range keys {
		fmt.Fprintf(h, "%d\x00%s\x00%t\x00", k.Kind, k.Param, k.Desc)
	}
	return h.Sum32()
}

func encodeCursor(keys []store.SortKey, c cursor) string {
	w := wireCursor{B: c.back, R: c.rid, H: sortHash(keys)}
	for _, v := range c.vals {
		var s string
		switch x := v.(type) {
		case nil:
			w.V = append(w.V, nil)
			continue
		case int64:
			s = "i" + strconv.FormatInt(x, 10)
		case float64:
			s = "f" + strconv.FormatFloat(x, 'g', -1, 64)
		case string:
			s = "s" + x
		case time.Time:
			s = "t" + x.UTC().Format(time.RFC3339Nano)
		default:
			s = "s" + fmt.Sprint(x)
		}
		w.V = append(w.V, &s)
	}
	raw, _ := json.Marshal(w)
	return "c" + base64.RawURLEncoding.EncodeToString(raw)
}

func decodeCursor(s string, keys []store.SortKey) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	bad := fhir.Invalid("", "invalid or expired page cursor %q", s)
	if len(s) < 2 || s[0] != 'c' {
		return cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[1:])
	if err != nil {
		return cursor{}, bad
	}
	var w wireCursor
	if err := json.Unmarshal(raw, &w); err != nil || w.R <= 0 || w.H != sortHash(keys) || len(w.V) != len(keys) {
		return cursor{}, bad
	}
	c := cursor{back: w.B, rid: w.R, vals: make([]any, len(w.V))}
	for i, p := range w.V {
		if p == nil {
			continue
		}
		v := *p
		if v == "" {
			return cursor{}, bad
		}
		switch v[0] {
		case 'i':
			n, err := strconv.ParseInt(v[1:], 10, 64)
			if err != nil {
				return cursor{}, bad
			}
			c.vals[i] = n
		case 'f':
			f, err := strconv.ParseFloat(v[1:], 64)
			if err != nil || math.IsNaN(f) {
				return cursor{}, bad
			}
			c.vals[i] = f
		case 's':
			c.vals[i] = v[1:]
		case 't':
			t, err := time.Parse(time.RFC3339Nano, v[1:])
			if err != nil {
				return cursor{}, bad
			}
			c.vals[i] = t
		default:
			return cursor{}, bad
		}
	}
	return c, nil
}
