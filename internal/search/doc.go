// Package search is FHIR search's domain: which index rows a resource
// yields for every R4 SearchParameter (Indexer, driven by the FHIRPath
// expressions of the official definitions), and how a FHIR search URL
// becomes the store's query AST (Parse). It knows nothing of SQL or HTTP:
// the engine calls it, the store backends translate its store.Query.
//
// Its rule is FHIR's and the project's: a query that cannot be answered
// exactly is an error, never a wider result. Unknown modifiers are 400;
// parts of FHIR search that are not implemented (:in, :below and :above on
// tokens, phonetic, near, _filter, _contained, _list) are 501.
//
// Decisions where R4 leaves room:
//   - Strings fold to lower case without combining marks (NFD), both in the
//     index and in the query, so "nunez" finds "Núñez"; :exact compares the
//     value as written.
//   - Dates without a zone are read as UTC. A row is the closed range of
//     milliseconds its precision covers; a Period without an end reaches to
//     the end of time. The nine prefixes are the range comparisons of
//     store.Prefix; ap widens the value by a tenth of its distance from now,
//     at least a day.
//   - Numbers and quantities are stored as written (a point); the search
//     value carries the implicit precision for eq and ne ("100" is
//     [99.5, 100.5]); the other prefixes compare the exact value. No unit
//     conversion: "||mg" matches the unit code or the unit text in any system.
//   - :not with several values ("code:not=a,b") keeps resources having
//     neither; :not and :missing=true include resources without the element.
//   - A system search narrows to the types that define every parameter used;
//     a parameter that no remaining type defines is 400, not ignored.
//   - A chain without a :Type keeps the reference's targets that define the
//     next parameter; each chain hop and _has hop honours the access filter.
//   - _total=estimate is counted exactly. _summary=true keeps the elements the
//     R4 definitions mark as summary, plus mandatory ones; anything removed
//     tags the resource SUBSETTED.
//   - Identifier :of-type and reference :identifier are indexed as Token rows
//     of derived parameter names ("identifier:of-type", "subject:identifier")
//     so the stores need no special case.
//   - _content indexes every string of the resource except references, urls,
//     systems, ids and meta (measured on Synthea: about 200 bytes per
//     resource in SQLite's FTS5); _text the narrative without markup.
package search
