package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// isAuditSearch reports whether r is the "who looked at my record" search.
func isAuditSearch(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.TrimSuffix(r.URL.Path, "/") == "/fhir/AuditEvent"
}

// auditSearch serves GET /fhir/AuditEvent from the audit log: a patient
// sees the entries about themself except restricted ones; the privacy
// officer (role privacy-officer) and the node operator see all and may
// search by patient, agent (user), organisation and date (ge/lt); everyone
// else, proxies included for now, is refused. Flags are returned as
// meta.tag codes of each AuditEvent.
func (h *handler) auditSearch(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	rd, ok := h.audit.(audit.Reader)
	if !ok {
		h.fail(w, r, errorf(fhir.ENotSupported, "not-supported", "this node cannot search its audit log"))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, fhir.Invalid("", "the query string is malformed"))
		return
	}
	var aq audit.Query
	switch {
	case p.Kind == auth.KindPatient && strings.HasPrefix(p.Subject, "Patient/"):
		aq = audit.Query{Patient: strings.TrimPrefix(p.Subject, "Patient/"), Unrestricted: true}
		if v := strings.TrimPrefix(q.Get("patient"), "Patient/"); v != "" && v != aq.Patient {
			h.fail(w, r, errorf(fhir.EForbidden, "forbidden", "a person sees only the accesses to their own record"))
			return
		}
	case p.Kind == auth.KindAdmin || p.Role == "privacy-officer":
		aq = audit.Query{Patient: strings.TrimPrefix(q.Get("patient"), "Patient/"), User: q.Get("agent"), Org: q.Get("organization")}
		for _, d := range q["date"] {
			if len(d) < 3 {
				h.fail(w, r, fhir.Invalid("date", "date must be ge or lt followed by an RFC 3339 instant"))
				return
			}
			t, err := time.Parse(time.RFC3339, d[2:])
			if err != nil {
				h.fail(w, r, fhir.Invalid("date", "date must be ge or lt followed by an RFC 3339 instant"))
				return
			}
			switch d[:2] {
			case "ge":
				aq.Since = t
			case "lt":
				aq.Until = t
			default:
				h.fail(w, r, fhir.Invalid("date", "date must be ge or lt followed by an RFC 3339 instant"))
				return
			}
		}
	default:
		h.fail(w, r, errorf(fhir.EForbidden, "forbidden", "only the person and the privacy officer may read the audit log"))
		return
	}
	entries, err := rd.Search(r.Context(), aq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var out []any
	for _, e := range entries {
		var ev map[string]any
		if json.Unmarshal(e.Event, &ev) != nil {
			continue
		}
		ev["id"] = fmt.Sprint(e.Index)
		var tags []any
		for _, f := range e.Flags {
			tags = append(tags, map[string]any{"system": "https://sharedcare.example/audit-flag", "code": f})
		}
		if len(tags) > 0 {
			ev["meta"] = map[string]any{"tag": tags}
		}
		out = append(out, map[string]any{"resource": ev})
	}
	raw, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(out), "entry": out})
	h.sendRaw(w, r, http.StatusOK, raw)
}
