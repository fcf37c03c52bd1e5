package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The key-value space (store.KV, migrations/0004_kv.sql). Reads use the read
// pool; writes go through the single writer like resource writes, so a
// compare-and-swap or create-if-absent is atomic against every other writer
// of the file (BEGIN IMMEDIATE holds the write lock across processes).

// kvPurge is how many expired rows of its bucket a KV write removes: enough
// to outpace the creation of one-time values, small enough to cost nothing.
const kvPurge = 8

// KV returns the unexpired entry bucket/key, or ENotFound.
func (s *Store) KV(ctx context.Context, bucket, key string) (*store.KV, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	e := &store.KV{Bucket: bucket, Key: key}
	var exp int64
	err := s.rdb.QueryRowContext(ctx,
		`SELECT value, version, expires FROM kv WHERE bucket = ? AND key = ? AND (expires = 0 OR expires > ?)`,
		bucket, key, time.Now().UnixMicro()).Scan(&e.Value, &e.Version, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kvNotFound(bucket, key)
	}
	if err != nil {
		return nil, toError(err)
	}
	e.Expires = store.KVTime(exp)
	return e, nil
}

// PutKV creates or replaces an entry; with e.Version set, only if the stored
// entry has that version.
func (s *Store) PutKV(ctx context.Context, e *store.KV) error {
	if err := store.CheckKV(e); err != nil {
		return err
	}
	var version int64
	err := s.submit(ctx, func(t *tx) error {
		cur, err := t.kvVersion(e.Bucket, e.Key)
		if err != nil {
			return err
		}
		if e.Version != 0 && cur != e.Version {
			return fhir.Errorf(fhir.EConflict, "", "the entry %s/%s has changed since it was read", e.Bucket, e.Key)
		}
		version = cur + 1
		return t.kvWrite(e, version)
	})
	if err != nil {
		return err
	}
	e.Version = version
	return nil
}

// PutKVIfAbsent creates an entry unless an unexpired one exists.
func (s *Store) PutKVIfAbsent(ctx context.Context, e *store.KV) (bool, error) {
	if err := store.CheckKV(e); err != nil {
		return false, err
	}
	created := false
	err := s.submit(ctx, func(t *tx) error {
		created = false
		cur, err := t.kvVersion(e.Bucket, e.Key)
		if err != nil || cur != 0 {
			return err
		}
		created = true
		return t.kvWrite(e, 1)
	})
	if err != nil {
		return false, err
	}
	if created {
		e.Version = 1
	}
	return created, nil
}

// DeleteKV removes an entry if it exists.
func (s *Store) DeleteKV(ctx context.Context, bucket, key string) error {
	return s.submit(ctx, func(t *tx) error {
		_, err := t.s.wconn.ExecContext(t.sqlCtx, `DELETE FROM kv WHERE bucket = ? AND key = ?`, bucket, key)
		return toError(err)
	})
}

// ListKV returns the unexpired entries of a bucket under a key prefix, in
// key order.
func (s *Store) ListKV(ctx context.Context, bucket, prefix string) ([]*store.KV, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	// key >= prefix finds the range start in the primary key; substr keeps
	// only the keys that really start with it (both compare bytewise).
	rows, err := s.rdb.QueryContext(ctx,
		`SELECT key, value, version, expires FROM kv
		 WHERE bucket = ? AND key >= ? AND substr(key, 1, length(?)) = ? AND (expires = 0 OR expires > ?)
		 ORDER BY key`,
		bucket, prefix, prefix, prefix, time.Now().UnixMicro())
	if err != nil {
		return nil, toError(err)
	}
	defer rows.Close()
	var out []*store.KV
	for rows.Next() {
		e := &store.KV{Bucket: bucket}
		var exp int64
		if err := rows.Scan(&e.Key, &e.Value, &e.Version, &exp); err != nil {
			return nil, toError(err)
		}
		e.Expires = store.KVTime(exp)
		out = append(out, e)
	}
	return out, toError(rows.Err())
}

// kvVersion is the version of the unexpired entry, 0 when there is none.
func (t *tx) kvVersion(bucket, key string) (int64, error) {
	if err := t.check(t.ctx); err != nil {
		return 0, err
	}
	var v int64
	err := t.s.wconn.QueryRowContext(t.sqlCtx,
		`SELECT version FROM kv WHERE bucket = ? AND key = ? AND (expires = 0 OR expires > ?)`,
		bucket, key, time.Now().UnixMicro()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, toError(err)
}

// kvWrite stores e at version, replacing any row (an expired one included),
// and removes a few expired rows of the bucket.
func (t *tx) kvWrite(e *store.KV, version int64) error {
	value := e.Value
	if value == nil {
		value = []byte{}
	}
	if _, err := t.s.wconn.ExecContext(t.sqlCtx,
		`INSERT OR REPLACE INTO kv (bucket, key, value, version, expires) VALUES (?, ?, ?, ?, ?)`,
		e.Bucket, e.Key, value, version, store.KVMicros(e.Expires)); err != nil {
		return toError(err)
	}
	_, err := t.s.wconn.ExecContext(t.sqlCtx,
		`DELETE FROM kv WHERE bucket = ? AND key IN (SELECT key FROM kv WHERE bucket = ? AND expires > 0 AND expires <= ? LIMIT ?)`,
		e.Bucket, e.Bucket, time.Now().UnixMicro(), kvPurge)
	return toError(err)
}

func kvNotFound(bucket, key string) error {
	return fhir.Errorf(fhir.ENotFound, "", "no entry %s/%s", bucket, key)
}
