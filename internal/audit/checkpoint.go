package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Files in the node's data directory. The signing key is kept here, not in
// the database, so that whoever can change the database (the attacker the
// log guards against: a DBA, a stolen backup restored, another node's bug)
// cannot sign a checkpoint for a history they rewrote (docs/AUDIT.md).
const (
	SigningKeyFile  = "audit-signing.key"  // note signer key, mode 0600
	VerifierKeyFile = "audit-verifier.key" // note verifier key, public
	CheckpointFile  = "audit-checkpoint"   // the latest checkpoint this node signed
)

// Checkpoint is a signed statement of the log's size and Merkle root, in
// the transparency-log checkpoint form: a note whose text is the origin
// line (the signer's key name), the size and the base64 root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	Time   time.Time // when it was signed (as stored; not part of the note)
	Note   []byte    // the signed note, what an outside party keeps
}

// nodeKey is the node's signing key.
type nodeKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// loadKey reads the node's signing key from dir, creating it (and the
// verifier key file beside it) on first use.
func loadKey(dir string) (*nodeKey, error) {
	if dir == "" {
		return nil, fhir.Internal(errors.New("audit: a data directory is needed for the signing key"))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fhir.Internal(err)
	}
	path := filepath.Join(dir, SigningKeyFile)
	skey, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		skey, err = createKey(dir)
	}
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("audit: signing key %s: %w", path, err))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fhir.Internal(fmt.Errorf("audit: signing key %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm()))
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("audit: signing key %s: %w", path, err))
	}
	vkey, err := ReadVerifierKey(dir)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil || verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return nil, fhir.Internal(fmt.Errorf("audit: %s does not match %s", VerifierKeyFile, SigningKeyFile))
	}
	return &nodeKey{signer: signer, verifier: verifier, vkey: vkey}, nil
}

// createKey makes a new key pair. The signing key file is created
// exclusively, so two processes starting on one data directory end up with
// the same key: the loser of the race reads the winner's.
func createKey(dir string) ([]byte, error) {
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "sharedcare-audit-"+hex.EncodeToString(id[:]))
	if err != nil {
		return nil, err
	}
	// The verifier first: a signing key on disk always has its verifier.
	vtmp := filepath.Join(dir, VerifierKeyFile+".new"+hex.EncodeToString(id[:]))
	if err := os.WriteFile(vtmp, []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(vtmp)
	f, err := os.OpenFile(filepath.Join(dir, SigningKeyFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(filepath.Join(dir, SigningKeyFile))
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(vtmp, filepath.Join(dir, VerifierKeyFile)); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return []byte(skey + "\n"), f.Close()
}

// ReadVerifierKey returns the node's verifier key (public) from its data
// directory: what an outside party needs to check the node's checkpoints.
func ReadVerifierKey(dir string) (string, error) {
	for range 50 {
		b, err := os.ReadFile(filepath.Join(dir, VerifierKeyFile))
		if err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fhir.Internal(err)
		}
		// A process creating the key writes the signing key before
		// renaming the verifier into place; wait a moment for it.
		time.Sleep(10 * time.Millisecond)
	}
	return "", fhir.Internal(fmt.Errorf("audit: no %s in %s", VerifierKeyFile, dir))
}

// VerifierKey is the node's verifier key, in note's text form.
func (l *Log) VerifierKey() string { return l.key.vkey }

// Verifier is the node's verifier.
func (l *Log) Verifier() note.Verifier { return l.key.verifier }

// checkpointText is the signed text of a checkpoint.
func checkpointText(origin string, size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// ParseCheckpoint opens a signed checkpoint with the given verifiers. The
// note must be signed by the key its origin line names.
func ParseCheckpoint(msg []byte, verifiers note.Verifiers) (*Checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return nil, errors.New("not a checkpoint: want an origin, a size and a root hash")
	}
	c := &Checkpoint{Origin: lines[0], Note: msg}
	if c.Size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || c.Size < 0 || strconv.FormatInt(c.Size, 10) != lines[1] {
		return nil, fmt.Errorf("checkpoint size %q is not a number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return nil, fmt.Errorf("checkpoint root %q is not a hash", lines[2])
	}
	copy(c.Root[:], root)
	signed := false
	for _, s := range n.Sigs {
		if s.Name == c.Origin {
			signed = true
		}
	}
	if !signed {
		return nil, fmt.Errorf("checkpoint of %s is not signed by %s", c.Origin, c.Origin)
	}
	return c, nil
}

// storeReader reads the tree's stored hashes from the store.
func (l *Log) storeReader(ctx context.Context) tlog.HashReader {
	return storeHashReader(ctx, l.st)
}

func storeHashReader(ctx context.Context, st store.AuditStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(ids []int64) ([]tlog.Hash, error) {
		raw, err := st.AuditHashes(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(raw))
		for i, h := range raw {
			if len(h) != tlog.HashSize {
				return nil, fmt.Errorf("stored audit hash %d is %d bytes", ids[i], len(h))
			}
			copy(out[i][:], h)
		}
		return out, nil
	})
}

// Checkpoint returns the latest signed checkpoint, first signing one of
// the current tree if it has grown since (or none was ever signed). It is
// stored in the store and written to the data directory. It covers every
// entry recorded before the call (it waits for the spool's move).
func (l *Log) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	if err := l.Flush(ctx); err != nil {
		return nil, err
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	n, err := l.st.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := l.st.AuditCheckpoints(ctx, true)
	if err != nil {
		return nil, err
	}
	if len(latest) > 0 && latest[0].Size >= n {
		// Possibly another node's: open it with whatever it was signed by,
		// checking only its form (the caller holds the verifier keys).
		c, err := parseStored(latest[0], l.key.verifier)
		if err == nil {
			return c, nil
		}
		// Not ours and not checkable here: sign our own of the same size.
	}
	root, err := tlog.TreeHash(n, l.storeReader(ctx))
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("audit: tree hash of %d entries: %w", n, err))
	}
	msg, err := note.Sign(&note.Note{Text: checkpointText(l.key.signer.Name(), n, root)}, l.key.signer)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	now := time.Now()
	if err := l.st.PutAuditCheckpoint(ctx, &store.AuditCheckpoint{Size: n, Root: root[:], Note: msg, Time: now.UnixMicro()}); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(l.dir, CheckpointFile), msg, 0o644); err != nil {
		return nil, fhir.Internal(fmt.Errorf("audit: keep the checkpoint in %s: %w", l.dir, err))
	}
	l.signed.Store(n)
	return &Checkpoint{Origin: l.key.signer.Name(), Size: n, Root: root, Time: time.UnixMicro(now.UnixMicro()).UTC(), Note: msg}, nil
}

// Latest returns the latest stored checkpoint, signing none; nil when
// none was ever signed.
func (l *Log) Latest(ctx context.Context) (*Checkpoint, error) {
	latest, err := l.st.AuditCheckpoints(ctx, true)
	if err != nil || len(latest) == 0 {
		return nil, err
	}
	c, err := parseStored(latest[0], l.key.verifier)
	if err != nil {
		return nil, nil // another node's, not checkable here: the caller signs its own
	}
	return c, nil
}

// parseStored opens a stored checkpoint with v, or with no check of the
// signature beyond its form when v is not the signer (see verify for the
// full check).
func parseStored(sc *store.AuditCheckpoint, v note.Verifier) (*Checkpoint, error) {
	c, err := ParseCheckpoint(sc.Note, note.VerifierList(v))
	if err != nil {
		return nil, err
	}
	if c.Size != sc.Size || !bytes.Equal(c.Root[:], sc.Root) {
		return nil, errors.New("stored checkpoint columns differ from its note")
	}
	c.Time = time.UnixMicro(sc.Time).UTC()
	return c, nil
}

// writeFileAtomic replaces path with data: written to a temporary file,
// synced, renamed.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ticker signs a checkpoint every l.every while the log has grown.
func (l *Log) ticker() {
	defer close(l.tickDone)
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-l.tickStop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := l.st.AuditSize(ctx)
		if err == nil && n > l.signed.Load() {
			_, err = l.Checkpoint(ctx)
		}
		cancel()
		if err != nil {
			l.logger.Error("audit: signing a checkpoint failed", "err", err)
		}
	}
}

// InclusionProof proves that entry index is in the tree of the first
// treeSize entries (check it with tlog.CheckRecord against a checkpoint of
// that size and the entry's tlog.RecordHash(LeafData(e))).
func (l *Log) InclusionProof(ctx context.Context, index, treeSize int64) (tlog.RecordProof, error) {
	n, err := l.st.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= treeSize || treeSize > n {
		return nil, fhir.Invalid("", "no entry %d in a tree of %d entries (the log holds %d)", index, treeSize, n)
	}
	p, err := tlog.ProveRecord(treeSize, index, l.storeReader(ctx))
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return p, nil
}

// ConsistencyProof proves that the tree of the first oldSize entries is a
// prefix of the tree of newSize (check it with tlog.CheckTree against two
// checkpoints).
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	n, err := l.st.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	if oldSize < 0 || oldSize > newSize || newSize > n {
		return nil, fhir.Invalid("", "no consistency proof from %d to %d entries (the log holds %d)", oldSize, newSize, n)
	}
	p, err := tlog.ProveTree(newSize, oldSize, l.storeReader(ctx))
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return p, nil
}

// Entry returns the entry at index, for an outside party checking its
// inclusion proof.
func (l *Log) Entry(ctx context.Context, index int64) (*Entry, error) {
	if err := l.Flush(ctx); err != nil {
		return nil, err
	}
	rows, err := l.st.AuditEntries(ctx, index, 1)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || rows[0].Index != index {
		return nil, fhir.Errorf(fhir.ENotFound, "", "no audit entry %d", index)
	}
	return fromRow(rows[0]), nil
}
