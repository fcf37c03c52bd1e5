package audit

// FlagReview marks the entry of a privacy officer's review of another
// entry (an alert): the reviewed entry is referenced in its AuditEvent's
// entity, with the outcome and note as that entity's details. Reviews are
// entries like any other, so they are as tamper-evident as the accesses
// they judge, and a flag puts them in the same index as the alerts (the
// queue reads both in one pass, newest first).
const FlagReview = "review"

// Review outcomes a privacy officer records for an alert.
const (
	ReviewAppropriate   = "appropriate"
	ReviewInappropriate = "inappropriate"
	ReviewEscalated     = "escalated"
)

// IsAlert reports whether e is an alert a privacy officer reviews: a
// flagged entry that is not itself a review.
func IsAlert(e *Entry) bool {
	alert := false
	for _, f := range e.Flags {
		if f == FlagReview {
			return false
		}
		alert = true
	}
	return alert
}
