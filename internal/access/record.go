package access

import "context"

// RecordOf returns the Patient ids that make up the person's whole record
// for the Patient id given: it and every record the master patient index
// links to it (Patient.link, both ways), sorted. It is what a person's own
// view covers, as their read filter does.
func (d *Decider) RecordOf(ctx context.Context, id string) ([]string, error) {
	return linked(ctx, d.st, []string{id})
}
