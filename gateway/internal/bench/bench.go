// Package bench is gateway-bench: the whole product started on loopback
// (redis-server, sandboxd with the local driver, agentd with the scripted
// provider, the gateway in process) and measured from the outside.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mgx-ai/mgx/gateway/internal/app"
	"github.com/mgx-ai/mgx/gateway/internal/config"
	"github.com/mgx-ai/mgx/pkg/authn"
	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// Options configures a run.
type Options struct {
	BinDir      string
	RedisServer string
	N           int
	Concurrency int
	Duration    time.Duration
	WSClients   int
}

const internalToken = "bench-internal-token"

// Run starts the product, measures, prints the tables to out and stops
// everything it started.
func Run(ctx context.Context, o Options, out io.Writer) (err error) {
	work, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var procs []*exec.Cmd
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			stopProcess(procs[i])
		}
	}()
	start := func(bin string, args []string, env map[string]string) error {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		logf, err := os.Create(filepath.Join(work, filepath.Base(bin)+".log"))
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", bin, err)
		}
		procs = append(procs, cmd)
		return nil
	}
	bin := func(name string) (string, error) {
		p, err := filepath.Abs(filepath.Join(o.BinDir, name))
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s not found in %s (run make build): %w", name, o.BinDir, err)
		}
		return p, nil
	}
	agentdBin, err := bin("agentd")
	if err != nil {
		return err
	}
	sandboxdBin, err := bin("sandboxd")
	if err != nil {
		return err
	}
	agentBin, err := bin("sandbox-agent")
	if err != nil {
		return err
	}

	redisAddr, sandboxdAddr, previewAddr, agentdAddr := free(), free(), free(), free()
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	if err := start(o.RedisServer, []string{"--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work}, nil); err != nil {
		return err
	}
	redisURL := "redis://" + redisAddr + "/0"
	if err := waitTCP(ctx, redisAddr); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	common := map[string]string{"MGX_INTERNAL_TOKEN": internalToken, "MGX_LOG_LEVEL": "warn"}
	if err := start(sandboxdBin, nil, merge(common, map[string]string{
		"SANDBOXD_LISTEN": sandboxdAddr, "SANDBOXD_PREVIEW_LISTEN": previewAddr, "SANDBOXD_REDIS_URL": redisURL,
		"SANDBOXD_DRIVER": "local", "SANDBOXD_RUN_DIR": filepath.Join(work, "sandboxes"), "SANDBOX_AGENT_BINARY": agentBin,
		// The bench owns its sandboxes: none is left running after it.
		"SANDBOX_POOL_SIZE": "0", "SANDBOXD_DESTROY_ON_EXIT": "true",
	})); err != nil {
		return err
	}
	if err := waitHealthy(ctx, sandboxdAddr); err != nil {
		return fmt.Errorf("sandboxd: %w", err)
	}
	if err := start(agentdBin, nil, merge(common, map[string]string{
		"AGENTD_LISTEN": agentdAddr, "AGENTD_REDIS_URL": redisURL, "SANDBOXD_ADDR": sandboxdAddr, "AGENTD_LLM_PROVIDER": "scripted",
	})); err != nil {
		return err
	}
	if err := waitHealthy(ctx, agentdAddr); err != nil {
		return fmt.Errorf("agentd: %w", err)
	}

	gwEnv := map[string]string{
		"GATEWAY_REDIS_URL": redisURL, "AGENTD_ADDR": agentdAddr, "SANDBOXD_ADDR": sandboxdAddr,
		"SANDBOXD_PREVIEW_URL": "http://" + previewAddr, "MGX_INTERNAL_TOKEN": internalToken, "MGX_LOG_LEVEL": "warn",
		"GATEWAY_JWT_SECRET": strings.Repeat("b", 32), "GATEWAY_RATE_LIMIT": "100000000",
		"GATEWAY_MAX_STREAMS_PER_USER": fmt.Sprint(o.WSClients + 8), "GATEWAY_STREAM_BUFFER": "4096",
	}
	limited, err := serveGateway(ctx, gwEnv)
	if err != nil {
		return err
	}
	gwEnv["GATEWAY_RATE_LIMIT"] = "0"
	unlimited, err := serveGateway(ctx, gwEnv)
	if err != nil {
		return err
	}

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

	cc, err := grpcclient.Dial(agentdAddr, grpcclient.Options{InternalToken: internalToken})
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

func serveGateway(ctx context.Context, env map[string]string) (string, error) {
	cfg, err := pkgconfig.LoadFrom[config.Config](env)
	if err != nil {
		return "", err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return "", err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = a.Serve(ctx, lis) }()
	return "http://" + lis.Addr().String(), nil
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

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func free() string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

func waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitHealthy(ctx context.Context, addr string) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not serving: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
