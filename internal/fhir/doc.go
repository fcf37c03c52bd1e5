// Package fhir is the domain core of sharedcare: the FHIR R4 JSON value model
// (parsing, encoding, element access), the single error type every layer
// returns, and its OperationOutcome form.
//
// It imports no database or HTTP code. Storage backends, the interaction
// engine and the HTTP API all depend on it; it depends on none of them.
package fhir
