package api

import (
	"net/http"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// accessAlerts answers GET /fhir/$access-alerts: the break-glass and
// self-claimed accesses a privacy officer reviews, or the person's own.
func (h *handler) accessAlerts(w http.ResponseWriter, r *http.Request, dec *access.Decider, c *access.Caller) {
	ctx := r.Context()
	alerts, err := dec.Alerts(ctx, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	params := []any{}
	for _, a := range alerts {
		params = append(params, fhir.Object{"name": "alert", "part": []any{
			fhir.Object{"name": "kind", "valueCode": a.Kind},
			fhir.Object{"name": "user", "valueString": a.User},
			fhir.Object{"name": "organisation", "valueString": a.Org},
			fhir.Object{"name": "role", "valueString": a.Role},
			fhir.Object{"name": "patient", "valueReference": fhir.Object{"reference": "Patient/" + a.Patient}},
			fhir.Object{"name": "reason", "valueCode": a.Reason},
			fhir.Object{"name": "text", "valueString": a.Text},
			fhir.Object{"name": "at", "valueInstant": a.At.UTC().Format(time.RFC3339)},
			fhir.Object{"name": "expires", "valueInstant": a.Expires.UTC().Format(time.RFC3339)},
		}})
	}
	h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": params})
}
