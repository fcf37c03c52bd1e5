package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// eNotAcceptable is the one error kind that belongs to HTTP alone: the
// client asked (by _format or Accept) for a representation the server cannot
// produce. FHIR's http page: a server that does not support the requested
// format returns 406; 415 is for a request body it cannot read.
const eNotAcceptable fhir.Kind = "not-acceptable"

// statusOf is the one mapping from an error kind to an HTTP status.
func statusOf(k fhir.Kind) int {
	switch k {
	case fhir.EInvalid:
		return http.StatusBadRequest
	case fhir.EUnauthorized:
		return http.StatusUnauthorized
	case fhir.EForbidden:
		return http.StatusForbidden
	case fhir.ENotFound:
		return http.StatusNotFound
	case fhir.EMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case eNotAcceptable:
		return http.StatusNotAcceptable
	case fhir.EConflict:
		return http.StatusConflict
	case fhir.EGone:
		return http.StatusGone
	case fhir.EPreconditionFailed:
		return http.StatusPreconditionFailed
	case fhir.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case fhir.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case fhir.EUnprocessable:
		return http.StatusUnprocessableEntity
	case fhir.ETooManyRequests:
		return http.StatusTooManyRequests
	case fhir.ENotSupported:
		return http.StatusNotImplemented
	case fhir.EUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// errorf is fhir.Errorf for the HTTP layer's own errors, with the issue code
// the FHIR issue-type value set has for them.
func errorf(kind fhir.Kind, code, format string, args ...any) *fhir.Error {
	e := fhir.Errorf(kind, "", format, args...)
	if code != "" {
		e.Issues[0].Code = code
	}
	return e
}

// fail answers the request with err as an OperationOutcome and its status.
// Internal errors are logged in full with the request id and shown only as
// "internal error".
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	kind := fhir.KindOf(err)
	status := statusOf(kind)
	st := stateOf(r)
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody will read the answer.
		status = 499
		err = fhir.Errorf(fhir.EUnavailable, "", "request cancelled")
	case status == http.StatusInternalServerError:
		h.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("request_id", st.id), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	if kind == fhir.EUnauthorized {
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(r, err))
	}
	w.Header().Del("ETag")
	w.Header().Del("Last-Modified")
	w.Header().Del("Location")
	w.Header().Del("Content-Location")
	h.sendObject(w, r, status, fhir.Outcome(err))
}

// wwwAuthenticate builds the RFC 6750 challenge. A request without any
// credentials gets the bare challenge (RFC 6750 §3.1: no error code when
// the request lacks authentication information); a bad token gets
// error="invalid_token" and the reason.
func wwwAuthenticate(r *http.Request, err error) string {
	c := `Bearer realm="sharedcare"`
	if r.Header.Get("Authorization") == "" {
		return c
	}
	c += `, error="invalid_token"`
	var fe *fhir.Error
	if errors.As(err, &fe) && len(fe.Issues) > 0 {
		c += `, error_description="` + quoteSafe(fe.Issues[0].Diagnostics) + `"`
	}
	return c
}

// quoteSafe keeps the printable ASCII of s, without quotes or backslashes,
// so it can sit inside a quoted header parameter.
func quoteSafe(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 200; i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\'')
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
		default:
			b = append(b, '?')
		}
	}
	return string(b)
}
