package audit

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/sharedcare/sharedcare/internal/procs"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The spool is where an entry becomes durable: a sequential file in the
// node's data directory that the committer appends each batch of entries
// to with one write and one fdatasync, before any caller is answered. The
// mover then appends the spooled entries to the store's log (hashes,
// indexes) in large transactions, each of which also records how far the
// spool has been moved (store.AuditTx.SetSpooled); after a crash the node
// moves whatever the spool holds beyond that position, so an acknowledged
// entry is moved exactly once and never lost.
//
// Why: appending to the indexed log on the request's path made every
// response wait for a transaction that inserts rows into five indexes and
// writes about a page of WAL an entry, one transaction at a time; the
// committer was the bottleneck (docs/AUDIT.md, "What it costs"). A spool
// append is a few sequential kilobytes and one flush.
//
// Layout: <data dir>/audit-spool/<position>.segment, segments named by
// the spool position (a byte count over all segments) they start at, 20
// decimal digits so that names sort as numbers. A segment holds records:
//
//	length   uint32, little-endian: the payload's length
//	crc      uint32, little-endian: CRC-32C of the payload
//	position uint64, little-endian: the spool position the record starts at
//	payload  the entries of one Record or RecordAll (encodeEntries)
//
// A segment is written over a file whose blocks are already written: a
// moved segment, reused, or failing that a file zeroed by a background
// goroutine ahead of need. Flushing data written over written blocks
// writes no metadata for the file's size or block map (on a journaling
// file system, no journal commit; this machine's ext4 has none), and
// measured here that halves a flush's CPU (113 against 223 us for 4 KiB,
// the machine's CPU, not only the process's) and its latency. The
// records of a segment therefore end at the first place that does not
// decode: zeros never do (an empty payload cannot hold its entry count),
// and neither does a record left from the file's earlier use, whose
// position is that of an earlier segment, always lower. The zeroing
// flushes each MiB as it writes it: every flush of the spool waits for
// whatever the disk has been given before it, and one flush of 64 MiB
// held the spool's flushes behind it for tens of milliseconds (a read's
// slowest latency at 5,000/s from 22-34 ms to 11-26, docs/BENCHMARKS.md).
// Reusing moved segments takes even that off the disk once a node has
// moved its first full segment: a file that grows (blocks allocated, its
// size changed) makes the spool's flushes beside it slow five to nine
// times as often as one written over (BenchmarkFlushBesideWriter).
//
// Segments of earlier builds, <position>.spool, have records without
// the position (an 8-byte header); they are read, moved and deleted as
// before, and never written to again.
//
// A record is written whole before it is acknowledged, so only the last
// record of the last segment can be torn (a crash during its write); it
// was never acknowledged, and the next write goes over it. A segment
// before the last must end where the next one starts; a bad record before
// that point is damage, and the spool refuses to open.

// spoolSegmentMax is the size of a zeroed segment and the size past which
// the committer starts the next. A segment begun without a file ready
// (the first after opening) is ended at spoolFirstMax instead, and the
// next is made ready when a segment is half full: a node that records
// little never writes a segment of zeroes. Up to spoolFreeMax moved
// segments of full size are kept for reuse; the rest are deleted.
const (
	spoolSegmentMax int64 = 64 << 20
	spoolFirstMax   int64 = 1 << 20
	spoolFreeMax          = 2
)

// spoolRecordMax bounds one record's payload (a RecordAll of a large
// transaction Bundle's entries); a longer length is damage.
const spoolRecordMax = 256 << 20

// A record's header: length, CRC and position; an earlier build's
// (.spool segments), length and CRC.
const (
	recordHeader = 16
	legacyHeader = 8
)

// SpoolDir is the spool's directory within the data directory.
const SpoolDir = "audit-spool"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spool is the open spool: the segment being appended to, under the
// committer's sole use.
type spool struct {
	dir   string
	lock  *os.File // audit-spool/lock, flock'd: one process per spool
	f     *os.File // the last segment, open for writing at end
	start int64    // the position f starts at
	end   int64    // the position after the last whole record
	limit int64    // the size past which f is ended

	// segMax and firstMax are spoolSegmentMax and spoolFirstMax, smaller
	// in tests.
	segMax, firstMax int64

	// want asks prepare for the next segment (capacity 1); next is a
	// file made ready by prepare (a moved segment, or zeroes), under the
	// name next.tmp until the committer names it by its position.
	want     chan struct{}
	next     chan *os.File // unbuffered: prepare holds next.tmp until taken
	prepared chan struct{} // closed when prepare has exited
	stop     chan struct{}
}

// nextName is the file prepare readies the next segment in; a moved
// segment kept for reuse is named freePrefix and its old position.
const (
	nextName   = "next.tmp"
	freePrefix = "free-"
)

// segment is one segment file: the position it starts at, and whether an
// earlier build wrote it (.spool: records without their position).
type segment struct {
	start  int64
	legacy bool
}

// spooled is one record read back from the spool.
type spooled struct {
	rows []*store.AuditEntry
	end  int64 // the position after the record
}

// errSpoolBusy is returned by openSpool when another process holds the
// spool (a node running on the same data directory).
var errSpoolBusy = errors.New("audit: another process is recording to this data directory's audit spool")

// openSpool opens the spool in dataDir (creating it), deletes segments
// wholly before from (moved already), and returns the records from from on,
// cutting off a torn last record.
func openSpool(dataDir string, from int64) (*spool, []spooled, error) {
	return openSpoolSized(dataDir, from, spoolSegmentMax, spoolFirstMax)
}

func openSpoolSized(dataDir string, from, segMax, firstMax int64) (*spool, []spooled, error) {
	dir := filepath.Join(dataDir, SpoolDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("audit: spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, errSpoolBusy
		}
		return nil, nil, fmt.Errorf("audit: spool: lock: %w", err)
	}
	s := &spool{dir: dir, lock: lock, segMax: segMax, firstMax: firstMax, want: make(chan struct{}, 1),
		next: make(chan *os.File), prepared: make(chan struct{}), stop: make(chan struct{})}
	recs, err := s.recover(from)
	if err != nil {
		close(s.prepared)
		s.close()
		return nil, nil, err
	}
	go s.prepare()
	return s, recs, nil
}

// prepare keeps one segment's file ready for the committer's next
// rotation, so that the rotation on a request's path is a rename: a moved
// segment kept for reuse if there is one, else a file of zeroes.
func (s *spool) prepare() {
	defer close(s.prepared)
	procs.Background()
	zeros := make([]byte, 1<<20)
	for {
		select {
		case <-s.want:
		case <-s.stop:
			return
		}
		f := s.reuse()
		if f == nil {
			f = s.zero(zeros)
		}
		if f == nil {
			// Stopped, or failed: the committer then starts an
			// unzeroed segment, which works, only slower.
			return
		}
		select {
		case s.next <- f:
		case <-s.stop:
			f.Close()
			return
		}
		// Asked again while this one was readied: that was for the
		// segment just begun, which has it.
		select {
		case <-s.want:
		default:
		}
	}
}

// zero writes next.tmp full of zeroes, flushing each MiB as it goes, and
// returns it open for writing from its start; nil if it failed or the
// spool closed meanwhile.
func (s *spool) zero(zeros []byte) *os.File {
	f, err := os.OpenFile(filepath.Join(s.dir, nextName), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil
	}
	for n := int64(0); n < s.segMax; n += int64(len(zeros)) {
		if _, err := f.Write(zeros[:min(int64(len(zeros)), s.segMax-n)]); err != nil {
			f.Close()
			return nil
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			f.Close()
			return nil
		}
		select {
		case <-s.stop:
			f.Close()
			return nil
		default:
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil
	}
	return f
}

// reuse readies a file already written to its full size as next.tmp and
// opens it for writing from its start: next.tmp itself when an earlier
// process left it whole, else a moved segment kept by trim. Nil when there
// is none (or it cannot be had: the caller zeroes a file instead).
func (s *spool) reuse() *os.File {
	next := filepath.Join(s.dir, nextName)
	if fi, err := os.Stat(next); err != nil || fi.Size() < s.segMax {
		_, frees, err := s.list()
		if err != nil || len(frees) == 0 {
			return nil
		}
		if err := os.Rename(filepath.Join(s.dir, frees[0]), next); err != nil {
			return nil
		}
	}
	f, err := os.OpenFile(next, os.O_WRONLY, 0o600)
	if err != nil {
		return nil
	}
	return f
}

// list returns the spool's segments by starting position, and the moved
// segments kept for reuse.
func (s *spool) list() (segs []segment, frees []string, err error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: spool: %w", err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), freePrefix) {
			frees = append(frees, de.Name())
			continue
		}
		name, ok := strings.CutSuffix(de.Name(), ".segment")
		legacy := false
		if !ok {
			if name, ok = strings.CutSuffix(de.Name(), ".spool"); !ok {
				continue
			}
			legacy = true
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil || len(name) != 20 || n < 0 {
			return nil, nil, fmt.Errorf("audit: spool: unexpected file %s in %s", de.Name(), s.dir)
		}
		segs = append(segs, segment{start: n, legacy: legacy})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(segs); i++ {
		if segs[i].start == segs[i-1].start {
			return nil, nil, fmt.Errorf("audit: spool: two segments start at position %d in %s", segs[i].start, s.dir)
		}
	}
	return segs, frees, nil
}

// segments lists the spool's segments by starting position.
func (s *spool) segments() ([]segment, error) {
	segs, _, err := s.list()
	return segs, err
}

func (s *spool) segmentPath(g segment) string {
	if g.legacy {
		return filepath.Join(s.dir, fmt.Sprintf("%020d.spool", g.start))
	}
	return filepath.Join(s.dir, fmt.Sprintf("%020d.segment", g.start))
}

// recover reads the records from position from on and leaves the last
// segment open for appending at the end of its last whole record. A last
// segment an earlier build wrote is left as it is, and a new one begun
// where its records end.
func (s *spool) recover(from int64) ([]spooled, error) {
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	var recs []spooled
	for i, g := range segs {
		last := i == len(segs)-1
		start, path := g.start, s.segmentPath(g)
		if !last && segs[i+1].start <= from {
			// Every record in it was moved before the crash, only not
			// yet deleted.
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("audit: spool: %w", err)
			}
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: spool: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: spool: %w", err)
		}
		size := fi.Size()
		off := int64(0)
		if from > start {
			off = from - start
		}
		if off > size {
			if !last {
				f.Close()
				return nil, fmt.Errorf("audit: spool: %s ends before position %d", path, from)
			}
			// The log has moved further than this spool holds: the spool
			// was replaced. Carry on from the log's position.
			f.Close()
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("audit: spool: %w", err)
			}
			break
		}
		// Read from the position on, record by record: not the moved
		// records before it, nor what follows the last (zeroes, or an
		// earlier use's records).
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: spool: %w", err)
		}
		br := bufio.NewReaderSize(f, 256<<10)
		for off < size {
			if !last && start+off == segs[i+1].start {
				break // the rest is not records, or a torn write the next segment followed
			}
			rows, n, err := readRecord(br, size-off, start+off, g.legacy)
			if err != nil {
				if !last {
					f.Close()
					return nil, fmt.Errorf("audit: spool: %s at byte %d: %v: the spool is damaged", path, off, err)
				}
				// The end of the records: zeroes, an earlier use's records,
				// or a record torn by a crash during its write, never
				// acknowledged, which the next write goes over.
				break
			}
			off += int64(n)
			recs = append(recs, spooled{rows: rows, end: start + off})
		}
		if !last && start+off != segs[i+1].start {
			f.Close()
			return nil, fmt.Errorf("audit: spool: the records of %s end at position %d but the next segment starts at %d: the spool is damaged", path, start+off, segs[i+1].start)
		}
		switch {
		case !last:
			f.Close()
		case g.legacy:
			// Never written to again: the next record goes into a new
			// segment. An empty one would share its start with it.
			f.Close()
			if off == 0 {
				if err := os.Remove(path); err != nil {
					return nil, fmt.Errorf("audit: spool: %w", err)
				}
			}
			if err := s.newSegment(start + off); err != nil {
				return nil, err
			}
		default:
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("audit: spool: %w", err)
			}
			s.f, s.start, s.end, s.limit = f, start, start+off, s.firstMax
			if size >= s.segMax {
				s.limit = s.segMax
			}
		}
	}
	if s.f == nil {
		if err := s.newSegment(from); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// newSegment starts the segment that begins at position start: the file
// prepare readied if it is ready, else an empty file.
func (s *spool) newSegment(start int64) error {
	path := s.segmentPath(segment{start: start})
	var f *os.File
	limit := s.firstMax
	select {
	case f = <-s.next:
		if err := os.Rename(filepath.Join(s.dir, nextName), path); err != nil {
			f.Close()
			f = nil
		} else {
			limit = s.segMax
		}
	default:
	}
	if f == nil {
		var err error
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
			return fmt.Errorf("audit: spool: %w", err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.start, s.end, s.limit = f, start, start, limit
	return nil
}

// write appends buf (whole encoded records, their positions not yet
// set) and makes it durable; s.end is then the position after it. On
// failure nothing of the write is counted: the segment is cut back to
// where it was, and if that fails too the spool refuses further writes.
func (s *spool) write(buf []byte) error {
	if s.f == nil {
		return errors.New("audit: the spool is closed after a failed write")
	}
	setPositions(buf, s.end)
	if _, err := s.f.Write(buf); err != nil {
		s.fail()
		return fmt.Errorf("audit: spool: write: %w", err)
	}
	if err := syscall.Fdatasync(int(s.f.Fd())); err != nil {
		s.fail()
		return fmt.Errorf("audit: spool: flush: %w", err)
	}
	s.end += int64(len(buf))
	if s.end-s.start >= s.limit/2 {
		select {
		case s.want <- struct{}{}:
		default:
		}
	}
	if s.end-s.start >= s.limit {
		if err := s.newSegment(s.end); err != nil {
			// The records are durable; the next write fails instead.
			s.f.Close()
			s.f = nil
		}
	}
	return nil
}

// fail puts the write position back after a failed write so that the
// next write starts at a record boundary (what the failed write left there
// does not decode, or is overwritten); when it cannot, the spool takes no
// more.
func (s *spool) fail() {
	if _, err := s.f.Seek(s.end-s.start, io.SeekStart); err == nil {
		return
	}
	s.f.Close()
	s.f = nil
}

// trim retires the segments every record of which is before position
// moved (moved into the log), never the last one: up to spoolFreeMax of
// full size are kept for prepare to reuse, the others deleted. It runs on
// the mover, beside the committer's writes.
func (s *spool) trim(moved int64) error {
	segs, frees, err := s.list()
	if err != nil {
		return err
	}
	kept := len(frees)
	for i, g := range segs {
		// Never the last: the committer appends to it (and reads of
		// s.start would race with its rotation).
		if i+1 >= len(segs) || segs[i+1].start > moved {
			break
		}
		path := s.segmentPath(g)
		if fi, err := os.Stat(path); err == nil && fi.Size() >= s.segMax && kept < spoolFreeMax {
			if err := os.Rename(path, filepath.Join(s.dir, fmt.Sprintf("%s%020d", freePrefix, g.start))); err != nil {
				return fmt.Errorf("audit: spool: %w", err)
			}
			kept++
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("audit: spool: %w", err)
		}
	}
	return nil
}

func (s *spool) close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.prepared
	select {
	case f := <-s.next:
		f.Close()
	default:
	}
	var err error
	if s.f != nil {
		err = s.f.Close()
		s.f = nil
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: spool: sync %s: %w", dir, err)
	}
	return nil
}

// encodeRecord appends the record of rows (one Record or RecordAll) to
// dst: header and payload. Its position is left zero: the committer sets
// it (setPositions) when it knows where the record goes.
func encodeRecord(dst []byte, rows []*store.AuditEntry) []byte {
	// Grown once: the header, the count, and per row its fields' bytes and
	// at most ten bytes of varint before each of the eleven.
	need := recordHeader + binary.MaxVarintLen64
	for _, r := range rows {
		need += 11*binary.MaxVarintLen64 + 1 + len(r.User) + len(r.Role) + len(r.Org) + len(r.Client) +
			joinedLen(r.Patients) + len(r.Action) + len(r.Outcome) + joinedLen(r.Flags) + len(r.Event)
	}
	dst = slices.Grow(dst, need)
	at := len(dst)
	dst = append(dst, make([]byte, recordHeader)...)
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	// Each field is its length and its bytes; a list's bytes are its items
	// joined by single spaces.
	str := func(s string) {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	list := func(items []string) {
		dst = binary.AppendUvarint(dst, uint64(joinedLen(items)))
		dst = appendJoined(dst, items)
	}
	for _, r := range rows {
		dst = binary.AppendVarint(dst, r.Time)
		str(r.User)
		str(r.Role)
		str(r.Org)
		str(r.Client)
		list(r.Patients)
		str(r.Action)
		str(r.Outcome)
		list(r.Flags)
		if r.Restricted {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
		dst = binary.AppendUvarint(dst, uint64(len(r.Event)))
		dst = append(dst, r.Event...)
	}
	payload := dst[at+recordHeader:]
	binary.LittleEndian.PutUint32(dst[at:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[at+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// setPositions writes into each record of buf (whole encoded records) the
// position it starts at, buf starting at position at.
func setPositions(buf []byte, at int64) {
	for off := 0; off+recordHeader <= len(buf); {
		binary.LittleEndian.PutUint64(buf[off+8:], uint64(at+int64(off)))
		off += recordHeader + int(binary.LittleEndian.Uint32(buf[off:]))
	}
}

// readRecord reads the next record from r, which starts at position at
// and of which at most left bytes remain in the segment: its entries and
// its length with the header. legacy reads an earlier build's record,
// which has no position.
func readRecord(r io.Reader, left, at int64, legacy bool) ([]*store.AuditEntry, int, error) {
	hl := headerLen(legacy)
	hdr := make([]byte, hl)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, 0, errors.New("short record header")
	}
	n := int64(binary.LittleEndian.Uint32(hdr))
	if n > spoolRecordMax || n > left-int64(hl) {
		return nil, 0, fmt.Errorf("record of %d bytes past the end", n)
	}
	// Checked before the payload is read: after the last record of a
	// reused segment comes an earlier use's, up to a segment long.
	if !legacy && binary.LittleEndian.Uint64(hdr[8:]) != uint64(at) {
		return nil, 0, errNotHere
	}
	b := make([]byte, int64(hl)+n)
	copy(b, hdr)
	if _, err := io.ReadFull(r, b[hl:]); err != nil {
		return nil, 0, errors.New("short record")
	}
	return decodeRecord(b, at, legacy)
}

// errNotHere: a record written at another position, left from an
// earlier use of the file.
var errNotHere = errors.New("a record of another position")

func headerLen(legacy bool) int {
	if legacy {
		return legacyHeader
	}
	return recordHeader
}

// decodeRecord reads the record at the start of b, which starts at
// position at: its entries and its length with the header. legacy reads
// an earlier build's record, which has no position.
func decodeRecord(b []byte, at int64, legacy bool) ([]*store.AuditEntry, int, error) {
	hl := headerLen(legacy)
	if len(b) < hl {
		return nil, 0, errors.New("short record header")
	}
	n := binary.LittleEndian.Uint32(b)
	if n > spoolRecordMax || int64(n) > int64(len(b)-hl) {
		return nil, 0, fmt.Errorf("record of %d bytes past the end", n)
	}
	if !legacy && binary.LittleEndian.Uint64(b[8:]) != uint64(at) {
		return nil, 0, errNotHere
	}
	payload := b[hl : hl+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errors.New("checksum mismatch")
	}
	d := decoder{b: payload}
	count := d.uvarint()
	if d.err == nil && count > uint64(len(payload)) {
		d.err = errors.New("bad entry count")
	}
	var rows []*store.AuditEntry
	for i := uint64(0); i < count && d.err == nil; i++ {
		r := &store.AuditEntry{Time: d.varint()}
		r.User, r.Role, r.Org, r.Client = d.str(), d.str(), d.str(), d.str()
		r.Patients = store.SplitAuditList(d.str())
		r.Action, r.Outcome = d.str(), d.str()
		r.Flags = store.SplitAuditList(d.str())
		r.Restricted = d.byte() == 1
		r.Event = []byte(d.str())
		rows = append(rows, r)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("bytes after the last entry")
	}
	if d.err != nil {
		return nil, 0, d.err
	}
	return rows, hl + int(n), nil
}

// decoder reads a record's payload; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads what binary.AppendVarint wrote: a zig-zag uvarint.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("field past the end")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("field past the end")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}
