package service_test

import (
	"context"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// FuzzOperations sends arbitrary bodies to $match, $merge and $unmerge and
// arbitrary ids to the review decisions over a small linked store: bad input
// is a 4xx error (never an internal one) and nothing panics.
func FuzzOperations(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","name":[{"family":"Walker"}]}},{"name":"count","valueInteger":3}]}`), "x")
	f.Add([]byte(`{"resourceType":"Patient","birthDate":"1961-04-12","gender":"female"}`), "no-such-task")
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"Patient/a"}},{"name":"target-patient","valueReference":{"reference":"Patient/b"}}]}`), "")
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"onlyCertainMatches","valueBoolean":"yes"}]}`), "../x")
	f.Add([]byte(`[]`), "a.b")
	n := open(f, backend.OpenSQLiteForTest(f))
	create(f, n, alice)
	create(f, n, aliceAtHospital)
	create(f, n, aliceMoved)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		check := func(op string, _ fhir.Object, err error) {
			if err != nil && fhir.KindOf(err) == fhir.EInternal {
				t.Fatalf("%s: internal error for bad input: %v", op, err)
			}
		}
		out, err := n.mpi.Match(ctx, body)
		check("$match", out, err)
		out, err = n.mpi.Merge(ctx, body)
		check("$merge", out, err)
		out, err = n.mpi.Unmerge(ctx, body)
		check("$unmerge", out, err)
		out, err = n.mpi.Accept(ctx, id)
		check("$accept", out, err)
		out, err = n.mpi.Reject(ctx, id)
		check("$reject", out, err)
	})
}
