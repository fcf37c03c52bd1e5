package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"time"
)

// rawClient is a minimal HTTP/1.1 keep-alive client for GET requests: one
// connection, a request prebuilt as bytes, the response parsed just enough
// to find its end. It exists because the load generator shares the
// benchmark machine (2 cores) with the server: net/http's client spent about
// 55 µs of CPU per request there, CPU taken from the server being measured;
// this one spends a fraction of that, as wrk or h2load would.
type rawClient struct {
	addr     string
	deadline time.Time
	c        net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	req      []byte
}

var errMalformed = errors.New("malformed HTTP response")

// get sends GET path with the given header block (each line ending in
// \r\n) and reads the whole response, returning its status.
func (rc *rawClient) get(path string, headers []byte) (int, error) {
	if rc.c == nil {
		c, err := net.Dial("tcp", rc.addr)
		if err != nil {
			return 0, err
		}
		c.SetDeadline(rc.deadline)
		rc.c, rc.r, rc.w = c, bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, 4<<10)
	}
	rc.req = append(rc.req[:0], "GET "...)
	rc.req = append(rc.req, path...)
	rc.req = append(rc.req, " HTTP/1.1\r\n"...)
	rc.req = append(rc.req, headers...)
	rc.req = append(rc.req, "\r\n"...)
	status, closeAfter, err := rc.roundTrip()
	if err != nil || closeAfter {
		rc.close()
	}
	return status, err
}

func (rc *rawClient) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.c = nil
	}
}

func (rc *rawClient) roundTrip() (status int, closeAfter bool, err error) {
	if _, err := rc.w.Write(rc.req); err != nil {
		return 0, true, err
	}
	if err := rc.w.Flush(); err != nil {
		return 0, true, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, true, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, true, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, true, errMalformed
	}
	length, chunked := -1, false
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return status, true, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, true, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, true, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case status == 204 || status == 304:
	case chunked:
		if err := rc.discardChunked(); err != nil {
			return status, true, err
		}
	case length >= 0:
		if _, err := rc.r.Discard(length); err != nil {
			return status, true, err
		}
	default:
		return status, true, errMalformed // body delimited by close: not expected from our server
	}
	return status, closeAfter, nil
}

func (rc *rawClient) discardChunked() error {
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return errMalformed
		}
		if n == 0 {
			for { // trailers, then the blank line
				line, err := rc.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := rc.r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
