package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The key-value space (store.KV, migrations/0004_kv.sql). Every write is one
// statement, so its atomicity is PostgreSQL's own: the row lock taken by
// INSERT ... ON CONFLICT or UPDATE decides races between nodes.

// kvPurge is how many expired rows of its bucket a KV write removes.
const kvPurge = 8

// KV returns the unexpired entry bucket/key, or ENotFound.
func (s *Store) KV(ctx context.Context, bucket, key string) (*store.KV, error) {
	e := &store.KV{Bucket: bucket, Key: key}
	var exp int64
	err := s.pool.QueryRow(ctx,
		`SELECT value, version, expires FROM kv WHERE bucket = $1 AND key = $2 AND (expires = 0 OR expires > $3)`,
		bucket, key, time.Now().UnixMicro()).Scan(&e.Value, &e.Version, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ENotFound, "", "no entry %s/%s", bucket, key)
	}
	if err != nil {
		return nil, dbError(err)
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
	now := time.Now().UnixMicro()
	var version int64
	var err error
	if e.Version == 0 {
		// An expired row is replaced as if it were absent: version 1.
		err = s.pool.QueryRow(ctx, `INSERT INTO kv (bucket, key, value, version, expires) VALUES ($1, $2, $3, 1, $4)
			ON CONFLICT (bucket, key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires,
				version = CASE WHEN kv.expires > 0 AND kv.expires <= $5 THEN 1 ELSE kv.version + 1 END
			RETURNING version`,
			e.Bucket, e.Key, kvValue(e.Value), store.KVMicros(e.Expires), now).Scan(&version)
	} else {
		err = s.pool.QueryRow(ctx, `UPDATE kv SET value = $3, expires = $4, version = version + 1
			WHERE bucket = $1 AND key = $2 AND version = $5 AND (expires = 0 OR expires > $6)
			RETURNING version`,
			e.Bucket, e.Key, kvValue(e.Value), store.KVMicros(e.Expires), e.Version, now).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return fhir.Errorf(fhir.EConflict, "", "the entry %s/%s has changed since it was read", e.Bucket, e.Key)
		}
	}
	if err != nil {
		return dbError(err)
	}
	e.Version = version
	return s.kvPurge(ctx, e.Bucket, now)
}

// PutKVIfAbsent creates an entry unless an unexpired one exists.
func (s *Store) PutKVIfAbsent(ctx context.Context, e *store.KV) (bool, error) {
	if err := store.CheckKV(e); err != nil {
		return false, err
	}
	now := time.Now().UnixMicro()
	tag, err := s.pool.Exec(ctx, `INSERT INTO kv (bucket, key, value, version, expires) VALUES ($1, $2, $3, 1, $4)
		ON CONFLICT (bucket, key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires, version = 1
		WHERE kv.expires > 0 AND kv.expires <= $5`,
		e.Bucket, e.Key, kvValue(e.Value), store.KVMicros(e.Expires), now)
	if err != nil {
		return false, dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	e.Version = 1
	return true, s.kvPurge(ctx, e.Bucket, now)
}

// DeleteKV removes an entry if it exists.
func (s *Store) DeleteKV(ctx context.Context, bucket, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM kv WHERE bucket = $1 AND key = $2`, bucket, key); err != nil {
		return dbError(err)
	}
	return nil
}

// ListKV returns the unexpired entries of a bucket under a key prefix, in
// key order (the columns use the "C" collation: bytewise, as in SQLite).
func (s *Store) ListKV(ctx context.Context, bucket, prefix string) ([]*store.KV, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value, version, expires FROM kv
		WHERE bucket = $1 AND key >= $2 AND starts_with(key, $2) AND (expires = 0 OR expires > $3)
		ORDER BY key`, bucket, prefix, time.Now().UnixMicro())
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*store.KV
	for rows.Next() {
		e := &store.KV{Bucket: bucket}
		var exp int64
		if err := rows.Scan(&e.Key, &e.Value, &e.Version, &exp); err != nil {
			return nil, dbError(err)
		}
		e.Expires = store.KVTime(exp)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
}

// kvPurge removes a few expired rows of a bucket.
func (s *Store) kvPurge(ctx context.Context, bucket string, now int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM kv WHERE bucket = $1 AND key IN (
		SELECT key FROM kv WHERE bucket = $1 AND expires > 0 AND expires <= $2 LIMIT $3)`, bucket, now, kvPurge)
	if err != nil {
		return dbError(err)
	}
	return nil
}

func kvValue(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}
