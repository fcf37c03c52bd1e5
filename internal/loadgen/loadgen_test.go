package loadgen

import (
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

func TestCheckLoopbackRefusesOtherHosts(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/fhir", true},
		{"http://localhost:8080/fhir", true},
		{"http://[::1]:8080/fhir", true},
		{"http://127.0.0.2/fhir", true}, // all of 127.0.0.0/8 is this machine
		{"http://10.0.0.1:8080/fhir", false},
		{"https://example.org/fhir", false},
		{"http://localhost.example.org/fhir", false},
		{"http://0.0.0.0:8080/fhir", false},
		{"ftp://127.0.0.1/fhir", false},
		{"127.0.0.1:8080", false},
	} {
		err := CheckLoopback(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want allowed=%v", tc.url, err, tc.ok)
		}
		if err != nil && !fhir.IsKind(err, fhir.EForbidden) && !fhir.IsKind(err, fhir.EInvalid) {
			t.Errorf("%s: got %v, want a *fhir.Error", tc.url, err)
		}
	}
}

func TestPercentileIsTheNearestRank(t *testing.T) {
	r := &Result{}
	for i := 1; i <= 100; i++ {
		r.sorted = append(r.sorted, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}, {99.9, 100 * time.Millisecond}} {
		if got := r.Percentile(tc.p); got != tc.want {
			t.Errorf("p%v: got %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := r.Max(); got != 100*time.Millisecond {
		t.Errorf("max: got %v, want 100ms", got)
	}
	if got := (&Result{}).Percentile(50); got != 0 {
		t.Errorf("no samples: got %v, want 0", got)
	}
}

func TestReadRefusesANonLoopbackServerBeforeSendingAnything(t *testing.T) {
	_, err := Read(t.Context(), NewClient(1, false), Config{BaseURL: "http://192.0.2.1/fhir", Type: "Patient", IDs: []string{"a"}, Duration: time.Hour})
	if !fhir.IsKind(err, fhir.EForbidden) {
		t.Errorf("got %v, want EForbidden", err)
	}
}
