package fhir

import (
	"errors"
	"fmt"
)

// Kind classifies an error so that every layer can react to it the same way
// and the HTTP layer can choose one status for it.
type Kind string

// The error kinds. Each maps to exactly one HTTP status (see api.statusOf).
const (
	EInvalid            Kind = "invalid"             // 400: the request itself is malformed
	EUnprocessable      Kind = "unprocessable"       // 422: well-formed but fails validation
	ENotFound           Kind = "not-found"           // 404
	EGone               Kind = "gone"                // 410: deleted
	EConflict           Kind = "conflict"            // 409: e.g. id clash inside a transaction
	EPreconditionFailed Kind = "precondition-failed" // 412: If-Match mismatch, ambiguous conditional match
	ETooLarge           Kind = "too-large"           // 413
	EUnsupportedMedia   Kind = "unsupported-media"   // 415
	EMethodNotAllowed   Kind = "method-not-allowed"  // 405
	EUnauthorized       Kind = "unauthorized"        // 401
	EForbidden          Kind = "forbidden"           // 403
	ENotSupported       Kind = "not-supported"       // 501: a valid FHIR request this server does not implement
	EUnavailable        Kind = "unavailable"         // 503
	ETooManyRequests    Kind = "too-many-requests"   // 429
	EInternal           Kind = "internal"            // 500: never shown in detail to the caller
)

// Severity is an OperationOutcome issue severity.
type Severity string

// Issue severities, from the FHIR issue-severity value set.
const (
	SeverityFatal       Severity = "fatal"
	SeverityError       Severity = "error"
	SeverityWarning     Severity = "warning"
	SeverityInformation Severity = "information"
)

// Issue is one OperationOutcome.issue: what is wrong and, where it applies to
// an element, the FHIRPath expression that locates it.
type Issue struct {
	Severity    Severity
	Code        string // FHIR issue-type code, e.g. "structure", "required", "value", "invalid"
	Diagnostics string // user-safe text
	Expression  string // FHIRPath location, e.g. "Patient.identifier[0].value"; empty when not element-specific
}

// Error is the one error type of sharedcare. Its Issues are safe to show to
// the caller; Err, the underlying cause, is for logs only.
type Error struct {
	Kind   Kind
	Issues []Issue
	Err    error
}

// Error returns the first issue's text, or the kind.
func (e *Error) Error() string {
	if len(e.Issues) > 0 {
		msg := e.Issues[0].Diagnostics
		if e.Issues[0].Expression != "" {
			msg += " (at " + e.Issues[0].Expression + ")"
		}
		if len(e.Issues) > 1 {
			msg += fmt.Sprintf(" and %d more issue(s)", len(e.Issues)-1)
		}
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		return msg
	}
	if e.Err != nil {
		return string(e.Kind) + ": " + e.Err.Error()
	}
	return string(e.Kind)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// issueCode is the default FHIR issue-type code for an error kind.
func (k Kind) issueCode() string {
	switch k {
	case EInvalid:
		return "invalid"
	case EUnprocessable:
		return "processing"
	case ENotFound:
		return "not-found"
	case EGone:
		return "deleted"
	case EConflict:
		return "conflict"
	case EPreconditionFailed:
		return "conflict"
	case ETooLarge:
		return "too-costly"
	case EUnsupportedMedia, EMethodNotAllowed, ENotSupported:
		return "not-supported"
	case EUnauthorized:
		return "login"
	case EForbidden:
		return "forbidden"
	case EUnavailable, ETooManyRequests:
		return "transient"
	default:
		return "exception"
	}
}

// Errorf returns an Error of the given kind with one issue at expr (which may
// be empty) whose text is the formatted message.
func Errorf(kind Kind, expr, format string, args ...any) *Error {
	return &Error{Kind: kind, Issues: []Issue{{
		Severity:    SeverityError,
		Code:        kind.issueCode(),
		Diagnostics: fmt.Sprintf(format, args...),
		Expression:  expr,
	}}}
}

// Internal wraps an unexpected failure. The caller sees only "internal error";
// err is kept for the log.
func Internal(err error) *Error {
	return &Error{Kind: EInternal, Err: err}
}

// Invalid reports malformed input (400) at expr.
func Invalid(expr, format string, args ...any) *Error {
	return Errorf(EInvalid, expr, format, args...)
}

// KindOf returns the kind of err: an *Error's own kind, EInternal otherwise.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return EInternal
}

// IsKind reports whether err is an *Error of kind k.
func IsKind(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Outcome renders err as an OperationOutcome resource. Internal errors are
// reduced to "internal error" so nothing about the system leaks; their cause
// must be logged by the caller.
func Outcome(err error) Object {
	var e *Error
	if !errors.As(err, &e) || e.Kind == EInternal {
		return OutcomeOf(Issue{Severity: SeverityError, Code: "exception", Diagnostics: "internal error"})
	}
	if len(e.Issues) == 0 {
		return OutcomeOf(Issue{Severity: SeverityError, Code: e.Kind.issueCode(), Diagnostics: string(e.Kind)})
	}
	return OutcomeOf(e.Issues...)
}

// OutcomeOf builds an OperationOutcome from issues.
func OutcomeOf(issues ...Issue) Object {
	list := make([]any, 0, len(issues))
	for _, is := range issues {
		m := Object{"severity": string(is.Severity), "code": is.Code}
		if is.Code == "" {
			m["code"] = "processing"
		}
		if is.Diagnostics != "" {
			m["diagnostics"] = is.Diagnostics
		}
		if is.Expression != "" {
			m["expression"] = []any{is.Expression}
		}
		list = append(list, m)
	}
	if len(list) == 0 {
		list = append(list, Object{"severity": "information", "code": "informational", "diagnostics": "ok"})
	}
	return Object{"resourceType": "OperationOutcome", "issue": list}
}
