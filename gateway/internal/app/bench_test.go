//go:build bench

package app_test

// The gateway benchmark (make bench-gateway): what the gateway adds. The same agentd call made as
// REST through the gateway and as direct gRPC, latency (p50/p99) and throughput from one run, plus
// WebSocket fan-out latency of one session's events to many clients against a direct gRPC
// subscriber. The product runs on loopback as the tests run it (pkg/stacktest: redis-server, sandboxd
// with the local driver, agentd with the scripted provider as processes, the gateway in this process);
// everything is bounded in time. It is a test behind the `bench` build tag, never run with the suite:
//
//	cd gateway && go test -tags bench -run '^TestBench$' -count=1 -v ./internal/app -args -n 2000 -c 8 -d 5s -ws 50

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/coder/websocket"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// Options configures a run.
type Options struct {
	N           int
	Concurrency int
	Duration    time.Duration
	WSClients   int
}

var benchOpts Options

func init() {
	flag.IntVar(&benchOpts.N, "n", 2000, "sequential calls per path for latency")
	flag.IntVar(&benchOpts.Concurrency, "c", 8, "concurrent callers for throughput")
	flag.DurationVar(&benchOpts.Duration, "d", 5*time.Second, "throughput run per path")
	flag.IntVar(&benchOpts.WSClients, "ws", 50, "WebSocket clients for fan-out")
}

func TestBench(t *testing.T) {
	o := benchOpts
	// Bounded: whatever happens, the bench ends.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	st := stacktest.StartStack(t, stacktest.Spec{NoGateway: true, Env: map[string]string{"MGX_LOG_LEVEL": "warn"}})
	env := st.GatewayEnv()
	env["GATEWAY_RATE_LIMIT"] = "100000000"
	env["GATEWAY_MAX_STREAMS_PER_USER"] = fmt.Sprint(o.WSClients + 8)
	env["GATEWAY_STREAM_BUFFER"] = "4096"
	limited := startGateway(t, env).base
	env["GATEWAY_LISTEN"] = "127.0.0.1:0"
	env["GATEWAY_RATE_LIMIT"] = "0"
	unlimited := startGateway(t, env).base
	if err := run(ctx, o, os.Stdout, st, limited, unlimited); err != nil {
		t.Fatal(err)
	}
}

// run measures and prints the tables to out.
func run(ctx context.Context, o Options, out io.Writer, st *stacktest.Stack, limited, unlimited string) (err error) {
	// A user and a session to read, through the gateway.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency * 2}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(ctx, hc, "POST", limited+"/api/auth/register", "", `{"email":"bench@example.com","password":"bench-password"}`, http.StatusCreated, &tok); err != nil {
		return err
	}
	var me struct {
		ID string `json:"id"`
	}
	if err := call(ctx, hc, "GET", limited+"/api/auth/me", tok.AccessToken, "", http.StatusOK, &me); err != nil {
		return err
	}
	var sess struct {
		ID string `json:"id"`
	}
	if err := call(ctx, hc, "POST", limited+"/api/sessions", tok.AccessToken, `{"title":"bench"}`, http.StatusCreated, &sess); err != nil {
		return err
	}

	cc, err := grpcclient.Dial(st.AgentdAddrs[0], grpcclient.Options{InternalToken: stacktest.Token})
	if err != nil {
		return err
	}
	defer cc.Close()
	sessions := agentdv1.NewSessionServiceClient(cc)
	userCtx := authn.WithUser(ctx, me.ID)

	grpcCall := func(ctx context.Context) error {
		_, err := sessions.GetSession(authn.WithUser(ctx, me.ID), &agentdv1.GetSessionRequest{Id: sess.ID})
		return err
	}
	restCall := func(base string) func(context.Context) error {
		return func(ctx context.Context) error {
			return call(ctx, hc, "GET", base+"/api/sessions/"+sess.ID, tok.AccessToken, "", http.StatusOK, nil)
		}
	}
	paths := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"direct gRPC (agentd GetSession)", grpcCall},
		{"REST via gateway (GET /api/sessions/{id})", restCall(limited)},
		{"REST via gateway, rate limiter off", restCall(unlimited)},
	}

	// Warm every path, then interleave the sequential calls so drift in
	// the machine's load hits all paths alike.
	for _, p := range paths {
		for range 200 {
			if err := p.fn(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	lat := make([][]time.Duration, len(paths))
	for range o.N {
		for i, p := range paths {
			t0 := time.Now()
			if err := p.fn(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			lat[i] = append(lat[i], time.Since(t0))
		}
	}
	thr := make([]float64, len(paths))
	for i, p := range paths {
		if thr[i], err = throughput(ctx, p.fn, o.Concurrency, o.Duration); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}

	fmt.Fprintf(out, "\nREST through the gateway vs direct gRPC — same call, same run (n=%d sequential; throughput c=%d for %s; loopback)\n\n", o.N, o.Concurrency, o.Duration)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tp50\tp99\tmean\tthroughput\t")
	for i, p := range paths {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f req/s\t\n", p.name, ms(pct(lat[i], 50)), ms(pct(lat[i], 99)), ms(mean(lat[i])), thr[i])
	}
	_ = tw.Flush()
	add := pct(lat[1], 50) - pct(lat[0], 50)
	addOff := pct(lat[2], 50) - pct(lat[0], 50)
	verdict := "meets"
	if add >= 300*time.Microsecond {
		verdict = "MISSES"
	}
	fmt.Fprintf(out, "\ngateway adds %s at p50 (%s with the Redis rate limiter off); target < 0.300 ms: %s\n", ms(add), ms(addOff), verdict)

	return fanout(ctx, out, o, limited, tok.AccessToken, sess.ID, agentdv1.NewEventServiceClient(cc), userCtx, hc)
}

// fanout connects WSClients WebSocket clients and one direct gRPC
// subscriber to one session, starts a run, and compares event delivery
// latency (event timestamp set by agentd → receipt).
func fanout(ctx context.Context, out io.Writer, o Options, base, token, session string, events agentdv1.EventServiceClient, userCtx context.Context, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wsLat, grpcLat []time.Duration
	perClient := make([]int, o.WSClients)
	var ended atomic.Int32
	var wg sync.WaitGroup
	wsBase := strings.Replace(base, "http", "ws", 1)
	// Subscribers replay the session's log from the start; only events
	// appended after the run was started (timestamp >= since) are measured.
	var since atomic.Int64
	since.Store(math.MaxInt64)
	ready := make(chan struct{}, o.WSClients+1)
	errc := make(chan error, o.WSClients+1)
	for i := range o.WSClients {
		c, resp, err := websocket.Dial(ctx, fmt.Sprintf("%s/api/ws/sessions/%s?token=%s&after_seq=%d", wsBase, session, token, 0), nil)
		if resp != nil && resp.Body != nil { // nil on success (coder/websocket)
			_ = resp.Body.Close()
		}
		if err != nil {
			return fmt.Errorf("ws client %d: %w", i, err)
		}
		c.SetReadLimit(1 << 20)
		wg.Go(func() {
			defer func() { _ = c.CloseNow() }()
			ready <- struct{}{}
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					if ctx.Err() == nil && ended.Load() == 0 {
						errc <- err
					}
					return
				}
				now := time.Now()
				var ev struct {
					Timestamp time.Time      `json:"timestamp"`
					Data      map[string]any `json:"data"`
				}
				if json.Unmarshal(msg, &ev) != nil || ev.Timestamp.UnixNano() < since.Load() {
					continue
				}
				mu.Lock()
				wsLat = append(wsLat, now.Sub(ev.Timestamp))
				perClient[i]++
				mu.Unlock()
				if terminal(ev.Data) {
					return
				}
			}
		})
	}
	st, err := events.StreamEvents(userCtx, &agentdv1.StreamEventsRequest{SessionId: session, AfterSeq: 0})
	if err != nil {
		return err
	}
	wg.Go(func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				return
			}
			ev := resp.GetEvent()
			if ev.GetTimestamp().AsTime().UnixNano() < since.Load() {
				continue
			}
			mu.Lock()
			grpcLat = append(grpcLat, time.Since(ev.GetTimestamp().AsTime()))
			mu.Unlock()
			if s, ok := ev.GetData().AsMap()["status"]; ok && terminal(map[string]any{"status": s}) {
				ended.Store(1)
				return
			}
		}
	})
	for range o.WSClients {
		<-ready
	}
	t0 := time.Now()
	since.Store(t0.UnixNano())
	if err := call(ctx, hc, "POST", base+"/api/chat/messages", token, fmt.Sprintf(`{"session_id":%q,"content":"build a hello world page"}`, session), http.StatusCreated, nil); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errc:
		return fmt.Errorf("ws client: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("fan-out: run did not finish: %w", ctx.Err())
	}
	min, max := slices.Min(perClient), slices.Max(perClient)
	fmt.Fprintf(out, "\nWebSocket fan-out — one session's run (%d events) to %d WebSocket clients and 1 direct gRPC subscriber, %.1fs\n\n",
		len(grpcLat), o.WSClients, time.Since(t0).Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subscriber\tdeliveries\tp50\tp99\tmax\t")
	fmt.Fprintf(tw, "direct gRPC StreamEvents\t%d\t%s\t%s\t%s\t\n", len(grpcLat), ms(pct(grpcLat, 50)), ms(pct(grpcLat, 99)), ms(pct(grpcLat, 100)))
	fmt.Fprintf(tw, "WebSocket via gateway (x%d)\t%d\t%s\t%s\t%s\t\n", o.WSClients, len(wsLat), ms(pct(wsLat, 50)), ms(pct(wsLat, 99)), ms(pct(wsLat, 100)))
	_ = tw.Flush()
	fmt.Fprintf(out, "\nlatency = receipt time − the event's timestamp (set by agentd when it appends the event); every client got %d..%d events\n", min, max)
	if min != len(grpcLat) || max != len(grpcLat) {
		return errors.New("fan-out: a WebSocket client missed events")
	}
	return nil
}

func terminal(data map[string]any) bool {
	switch data["status"] {
	case "completed", "failed", "cancelled", "stopped", "waiting":
		return true
	}
	return false
}

func call(ctx context.Context, hc *http.Client, method, url, token, body string, want int, into any) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, buf.String())
	}
	if into != nil {
		return json.Unmarshal(buf.Bytes(), into)
	}
	return nil
}

func throughput(ctx context.Context, fn func(context.Context) error, workers int, d time.Duration) (float64, error) {
	// A stop flag rather than a deadline on the calls' context: a call cut
	// by the deadline would be an error, not the end of the measurement.
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				if err := fn(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(t0).Seconds(), nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(max(len(d), 1))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }
