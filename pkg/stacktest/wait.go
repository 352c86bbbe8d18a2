package stacktest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Eventually polls cond every 20 ms until it holds, and fails t when within passes first. Tests wait
// for a state this way, never by sleeping for a guessed duration. It works in cleanups too.
func Eventually(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, fmt.Sprintf(format, args...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startTimeout bounds how long a service may take to report healthy. Generous: a loaded 2-core CI
// machine starts a Go service in well under a second, but can stall for many.
const startTimeout = 90 * time.Second

// WaitGRPC waits until the gRPC server at addr reports SERVING on grpc.health.v1 (the overall
// status; health checks need no credential). It fails t early when exited is closed first (the
// service died while starting; exited may be nil) or when startTimeout passes.
func WaitGRPC(t testing.TB, addr string, exited <-chan struct{}) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("stacktest: dial %s: %v", addr, err)
	}
	defer func() { _ = cc.Close() }()
	hc := healthpb.NewHealthClient(cc)
	var last error
	ok := poll(t, exited, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = fmt.Errorf("status %s", r.GetStatus())
		}
		last = err
		return err == nil
	})
	if !ok {
		t.Fatalf("stacktest: gRPC health of %s not SERVING (last: %v)", addr, last)
	}
}

// WaitHTTP waits until GET url answers want, like WaitGRPC.
func WaitHTTP(t testing.TB, url string, want int, exited <-chan struct{}) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	ok := poll(t, exited, func() bool {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			return false
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		return resp.StatusCode == want
	})
	if !ok {
		t.Fatalf("stacktest: GET %s did not answer %d (last: %s)", url, want, last)
	}
}

// poll runs probe until it succeeds (true), exited closes, the test ends or startTimeout passes.
func poll(t testing.TB, exited <-chan struct{}, probe func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if probe() {
			return true
		}
		select {
		case <-exited:
			t.Fatalf("stacktest: the service exited while starting")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
