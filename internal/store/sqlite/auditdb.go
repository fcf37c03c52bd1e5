package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
)

// The audit log lives in a database file of its own beside the store's
// (sharedcare.db → sharedcare-audit.db), with its own write connection.
//
// Why not the store's file: every request appends to the audit log, and
// any commit to a WAL database makes every reader of that file start its
// next transaction with an empty page cache and, once the checkpointer has
// grown the file, unmap and remap it. With the log in the store's file a
// read by id, which otherwise finds every page it needs cached, paid both
// on almost every request: measured over HTTP with 32 clients, munmap and
// mmap were a third of the server's CPU and reads ran at a fifth of their
// unaudited rate. In its own file the log's commits touch no page a
// resource reader holds, and its appends no longer queue behind resource
// writes in the store's writer (nor those behind it).
//
// The two files are never written in one transaction: an audit entry is
// recorded after the interaction it describes, in its own durable commit,
// as on PostgreSQL.

// auditPageSize is the page size of a new audit file.
const auditPageSize = 4096

// auditSchemaFile holds the log's tables: the ones migration 0005 created
// in the store's file, created as they are in the audit file.
const auditSchemaFile = "migrations/0005_audit.sql"

// auditDB is the audit log's file: one write connection, used by one
// append at a time (the audit package's committer), and a small pool of
// read-only connections for searches and verification.
type auditDB struct {
	path  string
	wdb   *sql.DB
	wconn *sql.Conn
	wmu   sync.Mutex // one transaction at a time on wconn
	wq    *queryCache
	rdb   *sql.DB
	rq    *queryCache
	ckdb  *sql.DB // the background checkpointer's connection

	committed chan struct{} // signalled by each commit (capacity 1)
}

// auditPath is the audit log's file for the store file at path.
func auditPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-audit" + ext
}

// openAuditDB opens (creating if needed) the audit file for the store file
// at path. common are the connection settings every connection shares.
func openAuditDB(ctx context.Context, path string, common url.Values) (*auditDB, error) {
	a := &auditDB{path: auditPath(path), committed: make(chan struct{}, 1)}
	// No mmap: the file grows with every commit, and a mapped reader
	// remaps whenever it has grown; audit reads are rare and sequential.
	base := cloneValues(common)
	base.Del("_pragma")
	for _, p := range common["_pragma"] {
		if !strings.HasPrefix(p, "mmap_size") {
			base.Add("_pragma", p)
		}
	}
	wv := cloneValues(base)
	// 4 KiB pages, half the store's: most of an append's pages are
	// dirtied by one small row each (the person-view key of a random
	// patient), and each is written whole to the WAL. BenchmarkRecord with
	// 64 callers: about 12% less CPU an entry than with 8 KiB (three runs
	// each); 2 KiB measured no better than 4.
	wv.Add("_pragma", fmt.Sprintf("page_size(%d)", auditPageSize))
	wv.Set("_journal_mode", "WAL")
	wv.Set("_synchronous", "FULL")
	wv.Add("_pragma", "wal_autocheckpoint(0)")
	wv.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
	var err error
	if a.wdb, err = sql.Open("sqlite", a.path+"?"+wv.Encode()); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", a.path, err)
	}
	a.wdb.SetMaxOpenConns(1)
	a.wdb.SetMaxIdleConns(1)
	a.wdb.SetConnMaxLifetime(0)
	a.wdb.SetConnMaxIdleTime(0)
	if a.wconn, err = connRetry(ctx, a.wdb); err != nil {
		a.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", a.path, err)
	}
	if err := a.createSchema(ctx); err != nil {
		a.close()
		return nil, err
	}
	a.wq = newQueryCache(a.wconn.PrepareContext)
	rv := cloneValues(base)
	rv.Add("_pragma", "query_only(1)")
	if a.rdb, err = sql.Open("sqlite", a.path+"?"+rv.Encode()); err != nil {
		a.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", a.path, err)
	}
	a.rdb.SetMaxOpenConns(4)
	a.rdb.SetMaxIdleConns(2)
	a.rq = newQueryCache(a.rdb.PrepareContext)
	if a.ckdb, err = sql.Open("sqlite", a.path+"?"+base.Encode()); err != nil {
		a.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", a.path, err)
	}
	a.ckdb.SetMaxOpenConns(1)
	a.ckdb.SetMaxIdleConns(1)
	a.ckdb.SetConnMaxIdleTime(0)
	a.ckdb.SetConnMaxLifetime(0)
	return a, nil
}

// createSchema creates the log's tables in a new file (user_version 0 →
// 1) from migration 0005, which is never edited, and brings an older file
// up to date: version 2 adds audit_spool (as PostgreSQL's migration 0007:
// how far each node's spool has been moved into the log).
func (a *auditDB) createSchema(ctx context.Context) error {
	return a.write(ctx, func(c *sql.Conn) error {
		var v int
		if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return err
		}
		if v > auditSchemaVersion {
			return fmt.Errorf("sqlite: %s has audit schema version %d, newer than this binary knows (%d)", a.path, v, auditSchemaVersion)
		}
		if v == 0 {
			schema, err := migrations.ReadFile(auditSchemaFile)
			if err != nil {
				return err
			}
			if _, err := c.ExecContext(ctx, string(schema)); err != nil {
				return fmt.Errorf("sqlite: create the audit schema in %s: %w", a.path, err)
			}
		}
		if v < 2 {
			if _, err := c.ExecContext(ctx, `CREATE TABLE audit_spool (
				node TEXT    PRIMARY KEY,
				pos  INTEGER NOT NULL
			)`); err != nil {
				return fmt.Errorf("sqlite: add audit_spool to %s: %w", a.path, err)
			}
		}
		if v == auditSchemaVersion {
			return nil
		}
		_, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", auditSchemaVersion))
		return err
	})
}

// auditSchemaVersion is the audit file's schema version (user_version).
const auditSchemaVersion = 2

// write runs fn in one BEGIN IMMEDIATE transaction on the write connection
// and commits it durably (synchronous=FULL), or rolls it back if fn fails.
func (a *auditDB) write(ctx context.Context, fn func(*sql.Conn) error) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	// As in the store's writer, statements run with a context that is never
	// cancelled: an interrupted statement could roll back half a batch.
	bg := context.Background()
	if err := ctx.Err(); err != nil {
		return toError(err)
	}
	if _, err := a.wconn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		return toError(fmt.Errorf("sqlite: audit: begin: %w", err))
	}
	if err := fn(a.wconn); err != nil {
		a.wconn.ExecContext(bg, "ROLLBACK")
		return toError(err)
	}
	if _, err := a.wconn.ExecContext(bg, "COMMIT"); err != nil {
		a.wconn.ExecContext(bg, "ROLLBACK")
		return toError(fmt.Errorf("sqlite: audit: commit: %w", err))
	}
	select {
	case a.committed <- struct{}{}:
	default:
	}
	return nil
}

// adoptFrom moves an audit log kept in the store's own file (where
// migration 0005 created it, before the log had a file of its own) into
// this file, then drops the old tables from the store's file (main, the
// store's write connection, before its writer starts). The copy is one
// transaction in this file and the drop one in the store's, so a crash
// between them leaves both whole; the next open sees the copy complete
// (equal sizes) and only drops.
func (a *auditDB) adoptFrom(ctx context.Context, main *sql.Conn, mainPath string) (err error) {
	// Nothing to move, the usual case once a node has opened its files:
	// no lock taken, so a second process (an admin command beside a
	// running node) does not wait for the node's writer.
	var before int
	if err := main.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'`).Scan(&before); err != nil {
		return toError(err)
	}
	if before == 0 {
		return nil
	}
	// The store file's write lock for the whole move: a second process
	// opening the same files waits here, then finds nothing to move.
	if _, err := main.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return toError(err)
	}
	defer func() {
		if err != nil {
			main.ExecContext(context.Background(), "ROLLBACK")
			return
		}
		if _, cerr := main.ExecContext(ctx, "COMMIT"); cerr != nil {
			main.ExecContext(context.Background(), "ROLLBACK")
			err = toError(cerr)
		}
	}()
	var tables int
	if err := main.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'`).Scan(&tables); err != nil {
		return toError(err)
	}
	if tables == 0 {
		return nil
	}
	var oldSize, newSize int64
	if err := main.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE one = 1`).Scan(&oldSize); err != nil {
		return toError(err)
	}
	if err := a.wconn.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE one = 1`).Scan(&newSize); err != nil {
		return toError(err)
	}
	switch {
	case oldSize == 0 || oldSize == newSize:
		// nothing to copy, or copied already
	case newSize != 0:
		return toError(fmt.Errorf("sqlite: the store file holds an audit log of %d entries and %s one of %d: refusing to choose between them", oldSize, a.path, newSize))
	default:
		if _, err := a.wconn.ExecContext(ctx, "ATTACH DATABASE ? AS old", mainPath); err != nil {
			return toError(fmt.Errorf("sqlite: audit: attach the store file: %w", err))
		}
		// A deferred BEGIN: IMMEDIATE would also lock the attached store
		// file, whose write lock this open already holds on main.
		err := func() error {
			c := a.wconn
			if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
				return err
			}
			for _, q := range []string{
				`INSERT INTO main.audit_entries SELECT * FROM old.audit_entries`,
				`INSERT INTO main.audit_patients SELECT * FROM old.audit_patients`,
				`INSERT INTO main.audit_hashes SELECT * FROM old.audit_hashes`,
				`INSERT INTO main.audit_checkpoints (size, root, note, time) SELECT size, root, note, time FROM old.audit_checkpoints ORDER BY id`,
				`UPDATE main.audit_head SET size = (SELECT size FROM old.audit_head WHERE one = 1)`,
			} {
				if _, err := c.ExecContext(ctx, q); err != nil {
					c.ExecContext(context.Background(), "ROLLBACK")
					return fmt.Errorf("sqlite: audit: copy the log from the store file: %w", err)
				}
			}
			if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
				c.ExecContext(context.Background(), "ROLLBACK")
				return fmt.Errorf("sqlite: audit: copy the log from the store file: %w", err)
			}
			return nil
		}()
		if _, derr := a.wconn.ExecContext(context.Background(), "DETACH DATABASE old"); err == nil && derr != nil {
			err = toError(derr)
		}
		if err != nil {
			return err
		}
	}
	for _, t := range []string{"audit_checkpoints", "audit_hashes", "audit_patients", "audit_entries", "audit_head"} {
		if _, err := main.ExecContext(ctx, "DROP TABLE "+t); err != nil {
			return toError(fmt.Errorf("sqlite: audit: drop %s from the store file: %w", t, err))
		}
	}
	return nil
}

// close closes every connection; errors are joined.
func (a *auditDB) close() error {
	var errs []error
	if a.ckdb != nil {
		errs = append(errs, a.ckdb.Close())
	}
	if a.rq != nil {
		a.rq.close()
	}
	if a.rdb != nil {
		errs = append(errs, a.rdb.Close())
	}
	if a.wq != nil {
		a.wq.close()
	}
	if a.wconn != nil {
		errs = append(errs, a.wconn.Close())
	}
	if a.wdb != nil {
		errs = append(errs, a.wdb.Close())
	}
	return errors.Join(errs...)
}
