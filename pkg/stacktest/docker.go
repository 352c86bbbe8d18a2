package stacktest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Docker skips t when no Docker engine answers (fails it under CI=true). It pings the engine's API
// on its unix socket ($DOCKER_HOST or /var/run/docker.sock), so it needs no client library.
func Docker(t testing.TB) {
	t.Helper()
	if err := dockerPing(); err != nil {
		Unavailable(t, fmt.Errorf("no Docker engine answers: %w", err))
	}
}

func dockerPing() error {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		p, ok := strings.CutPrefix(h, "unix://")
		if !ok {
			return fmt.Errorf("DOCKER_HOST=%s: only unix sockets are supported", h)
		}
		sock = p
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://docker/_ping")
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping answered %d", resp.StatusCode)
	}
	return nil
}
