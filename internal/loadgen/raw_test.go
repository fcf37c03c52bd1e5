package loadgen

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRawClientFindsTheEndOfEveryResponseShape checks the lean client's
// response parsing against Go's own HTTP server, which is the reference for
// the framing (Content-Length, chunked, Connection: close). This small
// handler is not a stand-in for sharedcare (read_test.go uses the real API):
// it produces framings the API only sends for some responses.
func TestRawClientFindsTheEndOfEveryResponseShape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			io.WriteString(w, strings.Repeat("a", 5000))
			w.(http.Flusher).Flush() // forces chunked framing
			io.WriteString(w, "tail")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	rc := &rawClient{addr: strings.TrimPrefix(srv.URL, "http://"), deadline: time.Now().Add(10 * time.Second)}
	defer rc.close()
	hdr := []byte("Host: x\r\n")
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/chunked", 200}, {"/chunked", 200}, {"/empty", 204}, {"/missing", 404}, {"/close", 200}, {"/chunked", 200},
	} {
		status, err := rc.get(tc.path, hdr)
		if err != nil || status != tc.status {
			t.Errorf("GET %s: got %d, %v, want %d", tc.path, status, err, tc.status)
		}
		if tc.path == "/close" && rc.c != nil {
			t.Error("the connection was kept after Connection: close")
		}
	}
}
