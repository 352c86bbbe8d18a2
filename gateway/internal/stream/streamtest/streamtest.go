// Package streamtest is a client of the gateway's Server-Sent Events streams for tests: it reads a
// stream as a browser's EventSource does and can stop mid-stream with the TCP connection closed under
// the server (a cut: a dropped network, a killed tab), which is what resume tests need.
package streamtest

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrEnded means the server ended the stream before the caller stopped reading.
var ErrEnded = errors.New("SSE stream ended")

// ReadSSE sends req over a connection of its own and hands every event to onEvent, with the id its
// "id:" line gave (0 without one), until onEvent stops (nil is returned, and the connection is closed
// at once: no keep-alive) or fails (its error is returned), the response is not 200, or the stream
// ends (ErrEnded). Each event is one "data:" line, as the gateway writes them.
func ReadSSE(req *http.Request, onEvent func(id uint32, data []byte) (stop bool, err error)) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SSE: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id uint32
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			n, err := strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 32)
			if err != nil {
				return fmt.Errorf("SSE id line %q: %w", line, err)
			}
			id = uint32(n)
		case strings.HasPrefix(line, "data: "):
			stop, err := onEvent(id, []byte(strings.TrimPrefix(line, "data: ")))
			if err != nil || stop {
				return err
			}
			id = 0
		}
	}
	return errors.Join(ErrEnded, sc.Err())
}
