package synth

import (
	"context"
	"testing"
)

// BenchmarkGenerate1000 measures one region of 1,000 people, written as NDJSON.
func BenchmarkGenerate1000(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		if _, err := Generate(context.Background(), dir, Options{People: 1000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPerson measures generating one person's records (no I/O).
func BenchmarkPerson(b *testing.B) {
	g := New(Options{People: 100000, Seed: 1})
	i := 0
	for b.Loop() {
		g.person(i % 100000)
		i++
	}
}
