package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// TestAlertQueueFromInteractions: a paramedic with no relationship to
// alice breaks glass and reads her record over the API; those interactions
// reach the privacy officer's queue as break-glass alerts naming the
// paramedic and alice, and alice's own queue and "who looked" search show
// them too; once reviewed, the alert leaves status=unreviewed.
func TestAlertQueueFromInteractions(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			l := auditLog(t, st)
			base, toks := auditedAccessNode(t, st, l)
			glass := `{"resourceType":"Parameters","parameter":[{"name":"reason","valueCode":"ETREAT"},{"name":"text","valueString":"collapsed in the street"}]}`
			if code, body := call(t, http.MethodPost, base+"/Patient/alice/$break-glass", toks["paramedic"], glass); code != http.StatusOK {
				t.Fatalf("break-glass: %d %s", code, body)
			}
			if code, body := call(t, http.MethodGet, base+"/Patient/alice", toks["paramedic"], ""); code != http.StatusOK {
				t.Fatalf("read under break-glass: %d %s", code, body)
			}

			queue := base + "/$access-alerts"
			as, _, _ := fetchQueue(t, queue, toks["gp-privacy"], http.StatusOK)
			var para []queueAlert
			for _, a := range as {
				if a.who == "para" {
					para = append(para, a)
				}
			}
			if len(para) < 2 {
				t.Fatalf("%d of the paramedic's interactions in the queue, want the break-glass and the read: %+v", len(para), as)
			}
			for _, a := range para {
				if !slices.Contains(a.flags, audit.FlagBreakGlass) || !slices.Contains(a.patients, "Patient/alice") || a.status != "unreviewed" {
					t.Errorf("alert %+v: want break-glass on alice, unreviewed", a)
				}
			}
			mine, _, _ := fetchQueue(t, queue, toks["alice"], http.StatusOK)
			if !slices.ContainsFunc(mine, func(a queueAlert) bool { return a.entry == para[0].entry }) {
				t.Errorf("alice's queue lacks the paramedic's read: %+v", mine)
			}
			s, body := auditGet(t, base+"/AuditEvent?agent=para", toks["alice"], http.StatusOK)
			if len(s.Entry) < 2 || !strings.Contains(body, audit.FlagBreakGlass) {
				t.Errorf("alice's who-looked search: %s", body)
			}

			if code, body := call(t, http.MethodPost, queue, toks["gp-privacy"], reviewBody(para[0].entry, "appropriate", "999 call confirmed")); code != http.StatusOK {
				t.Fatalf("review: %d %s", code, body)
			}
			un, _, _ := fetchQueue(t, queue+"?status=unreviewed", toks["gp-privacy"], http.StatusOK)
			for _, a := range un {
				if a.entry == para[0].entry {
					t.Fatalf("the reviewed alert is still unreviewed: %+v", a)
				}
			}
		})
	}
}
