package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
)

// TestSearchCodeAndDateAgreesWithDateAlone: a search by a code and dates
// (which PostgreSQL answers by walking the code's rows and testing each
// resource's span of dates inside the index first, migration 0008) finds
// exactly what the same dates find among that code's resources, for every
// date prefix, over resources with one date, a period, several dates
// (a Timing: one date may meet ge and another lt, as each parameter is
// tested on its own) and none. The case the span must not lose is named
// from the specification: an Observation whose events fall in 2019 and
// 2023 is found by date=ge2021&date=lt2022.
func TestSearchCodeAndDateAgreesWithDateAlone(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		obs := func(id, code, effective string) {
			body := `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"` + loinc + `","code":"` + code + `"}]}`
			if effective != "" {
				body += "," + effective
			}
			body += "}"
			if _, err := e.Update(ctx, "Observation", id, []byte(body), WriteOptions{}); err != nil {
				t.Fatalf("write %s: %v", id, err)
			}
		}
		obs("s1", "1111-1", `"effectiveDateTime":"2021-06-01T10:00:00Z"`)
		obs("s2", "1111-1", `"effectiveTiming":{"event":["2019-05-01T08:00:00Z","2023-05-01T08:00:00Z"]}`)
		obs("s3", "1111-1", "")
		obs("s4", "1111-1", `"effectivePeriod":{"start":"2020-12-15","end":"2021-01-15"}`)
		obs("s5", "2222-2", `"effectiveDateTime":"2021-06-01T10:00:00Z"`)
		obs("s6", "1111-1", `"effectiveDateTime":"2022"`)
		ids := func(q string) []string {
			match, _ := entries(t, mustSearch(t, ctx, e, "Observation", q+"&_count=100"))
			slices.Sort(match)
			return match
		}
		code := "code=" + loinc + "|1111-1"
		var dates []string
		for _, p := range []string{"eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap"} {
			for _, v := range []string{"2019", "2020", "2021", "2021-01-10", "2021-06-01T10:00:00Z", "2022", "2023-05"} {
				dates = append(dates, "date="+p+v)
			}
		}
		dates = append(dates, "date=ge2021&date=lt2022", "date=gt2019&date=lt2023", "date=ge2021-01&date=le2021-01",
			"date=sa2020&date=eb2022", "date=ge2024", "date=lt2019")
		for _, d := range dates {
			var want []string
			for _, id := range ids(d) {
				if slices.Contains([]string{"Observation/s1", "Observation/s2", "Observation/s3", "Observation/s4", "Observation/s6"}, id) {
					want = append(want, id)
				}
			}
			if got := ids(code + "&" + d); !slices.Equal(got, want) {
				t.Errorf("%s&%s: %v; the dates alone among the code's: %v", code, d, got, want)
			}
		}
		if got := ids(code + "&date=ge2021&date=lt2022"); !slices.Contains(got, "Observation/s2") {
			t.Errorf("date=ge2021&date=lt2022 lost the Observation with events in 2019 and 2023: %v", got)
		}
	})
}
