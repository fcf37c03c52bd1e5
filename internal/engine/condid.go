package engine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sync"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Conditional creates race: two requests with the same criteria can both
// search, both find nothing and both create. A single-writer store (SQLite)
// serialises them, but PostgreSQL in READ COMMITTED does not, and no index
// can forbid "two resources with this identifier" in general. So a
// conditional create (and a conditional update that creates) does not pick a
// random id: it derives the id from the criteria, keyed by a node secret.
// Two racing creates then write the same type/id, the store lets only one
// version 1 in, and the loser is retried, finds the winner and returns it.
//
// The id is an HMAC so that it reveals nothing about the criteria (an
// identifier such as an NHS number) to anyone without the node's secret.
// Criteria spelled differently give different ids; that only re-opens the
// race between differently spelled requests.

// condIDSecret names the node secret the ids are keyed with.
const condIDSecret = "engine-conditional-id-key"

type condKey struct {
	mu  sync.Mutex
	key []byte
}

func (e *Engine) conditionalKey(ctx context.Context) ([]byte, error) {
	e.ck.mu.Lock()
	defer e.ck.mu.Unlock()
	if e.ck.key != nil {
		return e.ck.key, nil
	}
	k, err := e.st.Secret(ctx, condIDSecret, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return nil, err
	}
	if len(k) < 16 {
		return nil, fhir.Internal(errShortSecret)
	}
	e.ck.key = k
	return k, nil
}

type shortSecretError struct{}

func (shortSecretError) Error() string { return "the conditional id secret is too short" }

var errShortSecret = shortSecretError{}

// conditionalID is the id a conditional create with criteria q on typ
// creates: a UUID-shaped HMAC of the type and the canonical criteria.
func (e *Engine) conditionalID(ctx context.Context, typ string, q url.Values) (string, error) {
	k, err := e.conditionalKey(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(typ))
	m.Write([]byte{'?'})
	m.Write([]byte(q.Encode()))
	var b [16]byte
	copy(b[:], m.Sum(nil))
	b[6] = b[6]&0x0f | 0x40 // shaped as a version 4 UUID, like every other server id
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:]), nil
}

// createTarget decides, inside tx, the id and version a conditional create
// that matched nothing writes: the derived id as version 1; the next version
// if that id was deleted (the create re-creates it); a random id if a live
// resource that does not match the criteria holds it. If the criteria match
// now (a concurrent transaction committed between the search and the read,
// which READ COMMITTED allows), the whole transaction is run again so that
// its search sees the winner.
func createTarget(ctx context.Context, tx store.Tx, typ, derived string, q url.Values) (string, int64, error) {
	cur, err := readForUpdate(ctx, tx, typ, derived)
	switch {
	case err != nil:
		return "", 0, err
	case cur == nil:
		return derived, 1, nil
	case cur.Deleted:
		return derived, cur.VersionID + 1, nil
	}
	m, err := matchConditional(ctx, tx, typ, q)
	if err != nil {
		return "", 0, err
	}
	if len(m) > 0 {
		return "", 0, &retryError{fhir.Errorf(fhir.EConflict, "", "%s created concurrently", typ)}
	}
	return newID(), 1, nil
}
