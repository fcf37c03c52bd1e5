// Package synth generates the synthetic health-and-care region that the
// demo, the sharing tests, the master patient index and the benchmarks run
// on (issue 3): organisations of every type a shared care record connects,
// their staff, and people with UK demographics and coded life histories,
// each organisation holding its own copy of the person as it would in real
// life — its own local ids and identifiers, and the typos, old addresses,
// changed surnames, swapped dates and missing or wrong NHS numbers a master
// patient index must cope with.
//
// It is domain code: it builds FHIR R4 resources (fhir.Object) and writes
// them to files; it knows nothing of HTTP or storage. The command
// `sharedcare generate` (cmd/sharedcare/generate.go) wires it.
//
// Generation is deterministic and streams: person i is generated from a
// pseudo-random generator seeded with (seed, i) only, so people can be
// generated in parallel and in any order and the output is byte-identical for
// the same --people and --seed; people are generated in fixed-size batches
// and written in index order, so memory does not grow with the number of
// people. docs/DATA.md describes the model and where its figures come from.
package synth
