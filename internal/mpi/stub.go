package mpi

import "sync"

const numFields = 9

type field struct {
	m, u, w []float64
}

type index struct {
	mu    sync.RWMutex
	model *Model
	recs  map[string]*Record
}

func newIndex(m *Model) *Index { return &Index{idx: index{model: m, recs: map[string]*Record{}}} }

func (ix *index) add(r Record)                           {}
func (ix *index) remove(ref string)                      {}
func (ix *index) len() int                               { return 0 }
func (ix *index) get(ref string) (Record, bool)          { return Record{}, false }
func (ix *index) candidates(r Record, limit int) []Match { return nil }

func train(recs []Record) *Model                      { return defaultModel() }
func defaultModel() *Model                            { return &Model{Link: 12, Review: 4} }
func (m *Model) compare(a, b *Record) Match           { return Match{Ref: b.Ref, Grade: CertainlyNot} }
func (m *Model) gradeOf(score float64) Grade          { return CertainlyNot }
func link(m *Model, recs []Record) Linkage            { return Linkage{Person: map[string]string{}} }
func fromPatient(ref string, p map[string]any) Record { return Record{Ref: ref} }
