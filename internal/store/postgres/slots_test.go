package postgres

import (
	"runtime"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// search_slots is ours: it sets the bound on concurrent searches and is
// taken out of the URL before pgx sees it (PostgreSQL would refuse an
// unknown runtime parameter).
func TestSearchSlotsFromTheURL(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		n       int
	}{
		{"postgres://u@127.0.0.1:5432/db?sslmode=disable", "postgres://u@127.0.0.1:5432/db?sslmode=disable", runtime.GOMAXPROCS(0)},
		{"postgres://u@127.0.0.1:5432/db?sslmode=disable&search_slots=6", "postgres://u@127.0.0.1:5432/db?sslmode=disable", 6},
		{"postgres://u@127.0.0.1:5432/db?search_slots=1", "postgres://u@127.0.0.1:5432/db", 1},
		{"host=127.0.0.1 dbname=db", "host=127.0.0.1 dbname=db", runtime.GOMAXPROCS(0)},
	} {
		out, n, err := searchSlotsOf(tc.in)
		if err != nil || out != tc.out || n != tc.n {
			t.Errorf("searchSlotsOf(%q) = %q, %d, %v; want %q, %d", tc.in, out, n, err, tc.out, tc.n)
		}
	}
	for _, bad := range []string{"postgres://u@h/db?search_slots=0", "postgres://u@h/db?search_slots=x"} {
		if _, _, err := searchSlotsOf(bad); !fhir.IsKind(err, fhir.EInvalid) {
			t.Errorf("searchSlotsOf(%q): %v, want an invalid-URL error", bad, err)
		}
	}
}
