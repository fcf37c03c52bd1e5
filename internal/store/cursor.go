package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Cursor is a position in a search's order, shared by the backends so that
// every store pages the same way: a row's sort values and its internal key.
// Back marks a cursor for the page before that row.
type Cursor struct {
	Back bool
	Vals []any // int64, float64, string, time.Time or nil, one per sort key
	RID  int64
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

func sortHash(keys []SortKey) uint32 {
	h := fnv.New32a()
	for _, k := range keys {
		fmt.Fprintf(h, "%d\x00%s\x00%t\x00", k.Kind, k.Param, k.Desc)
	}
	return h.Sum32()
}

// EncodeCursor renders c as the opaque cursor string of a Result.
func EncodeCursor(keys []SortKey, c Cursor) string {
	w := wireCursor{B: c.Back, R: c.RID, H: sortHash(keys)}
	for _, v := range c.Vals {
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

// DecodeCursor parses a cursor made by EncodeCursor for the same sort keys;
// anything else, including a cursor of a differently ordered query, is
// EInvalid. An empty string is the zero Cursor (the first page).
func DecodeCursor(s string, keys []SortKey) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	bad := fhir.Invalid("", "invalid or expired page cursor %q", s)
	if len(s) < 2 || s[0] != 'c' {
		return Cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[1:])
	if err != nil {
		return Cursor{}, bad
	}
	var w wireCursor
	if err := json.Unmarshal(raw, &w); err != nil || w.R <= 0 || w.H != sortHash(keys) || len(w.V) != len(keys) {
		return Cursor{}, bad
	}
	c := Cursor{Back: w.B, RID: w.R, Vals: make([]any, len(w.V))}
	for i, p := range w.V {
		if p == nil {
			continue
		}
		v := *p
		if v == "" {
			return Cursor{}, bad
		}
		switch v[0] {
		case 'i':
			n, err := strconv.ParseInt(v[1:], 10, 64)
			if err != nil {
				return Cursor{}, bad
			}
			c.Vals[i] = n
		case 'f':
			f, err := strconv.ParseFloat(v[1:], 64)
			if err != nil || math.IsNaN(f) {
				return Cursor{}, bad
			}
			c.Vals[i] = f
		case 's':
			c.Vals[i] = v[1:]
		case 't':
			t, err := time.Parse(time.RFC3339Nano, v[1:])
			if err != nil {
				return Cursor{}, bad
			}
			c.Vals[i] = t
		default:
			return Cursor{}, bad
		}
	}
	return c, nil
}
