package audit_test

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFlushBesideWriter measures what another file's writes do to
// the spool's flushes: a spool-sized record (3,000 bytes) written over a
// zeroed file and flushed with fdatasync once an iteration, while a second
// goroutine writes 700 KB and flushes it every 20 ms (about what the
// mover's transactions write into the audit file at 5,000 entries a
// second). The writer overwrites blocks its file already has
// ("overwrite"), overwrites blocks fallocate reserved without writing
// them ("fallocate"), or appends, growing its file ("grow"); "alone" has
// no writer. Reported: the flush's p50 and p99 and the share of flushes
// over 1 ms, the stalls that set an audited read's tail.
//
//	go test ./internal/audit -run '^$' -bench FlushBesideWriter -benchtime 30000x
func BenchmarkFlushBesideWriter(b *testing.B) {
	for _, mode := range []string{"alone", "overwrite", "fallocate", "grow"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			spool := zeroedFile(b, filepath.Join(dir, "spool"), 16<<20)
			defer spool.Close()
			if mode != "alone" {
				other := otherFile(b, filepath.Join(dir, "other"), mode)
				defer other.Close()
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() { backgroundWriter(b, other, mode == "grow", stop) })
				// Before the files close, however the benchmark ends.
				defer wg.Wait()
				defer close(stop)
			}
			rec := make([]byte, 3000)
			for i := range rec {
				rec[i] = byte(i)
			}
			var lat []time.Duration
			off := int64(0)
			for b.Loop() {
				t := time.Now()
				if _, err := spool.WriteAt(rec, off); err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fdatasync(int(spool.Fd())); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
				if off += int64(len(rec)); off+int64(len(rec)) > 16<<20 {
					off = 0
				}
			}
			slices.Sort(lat)
			slow := 0
			for _, d := range lat {
				if d > time.Millisecond {
					slow++
				}
			}
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(100*float64(slow)/float64(len(lat)), "%>1ms")
		})
	}
}

// otherFile creates the background writer's file for mode: zeroed
// ("overwrite"), reserved by fallocate and unwritten ("fallocate"), or
// empty ("grow").
func otherFile(b *testing.B, path, mode string) *os.File {
	b.Helper()
	if mode == "overwrite" {
		return zeroedFile(b, path, 256<<20)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if mode == "fallocate" {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, 256<<20); err != nil {
			f.Close()
			b.Skipf("fallocate: %v", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			b.Fatal(err)
		}
	}
	return f
}

// zeroedFile creates path holding size zero bytes, written and flushed:
// its blocks allocated and initialised, as the spool's segments are.
func zeroedFile(b *testing.B, path string, size int64) *os.File {
	b.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zeros)) {
		if _, err := f.Write(zeros); err != nil {
			f.Close()
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return f
}

// backgroundWriter writes 700 KB and flushes it every 20 ms until stop:
// appending (the file grows) or going round the first 256 MiB.
func backgroundWriter(b *testing.B, f *os.File, grow bool, stop <-chan struct{}) {
	buf := make([]byte, 700_000)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	off := int64(0)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Error(err)
			return
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Error(err)
			return
		}
		if off += int64(len(buf)); !grow && off+int64(len(buf)) > 256<<20 {
			off = 0
		}
	}
}
