package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	pkgconfig "github.com/mgx-ai/mgx/pkg/config"
	"github.com/mgx-ai/mgx/pkg/service"
)

// blocker is a gRPC service whose Wait calls return when release is closed, and whose Now calls
// return at once.
type blocker struct {
	release chan struct{}
	entered chan struct{}
}

func (b *blocker) desc() *grpc.ServiceDesc {
	handler := func(wait bool) grpc.MethodHandler {
		return func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(&emptypb.Empty{}); err != nil {
				return nil, err
			}
			if wait {
				b.entered <- struct{}{}
				select {
				case <-b.release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return &emptypb.Empty{}, nil
		}
	}
	return &grpc.ServiceDesc{
		ServiceName: "test.Blocker",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Wait", Handler: handler(true)},
			{MethodName: "Now", Handler: handler(false)},
		},
	}
}

type fixture struct {
	life    *service.Lifecycle
	grpc    *grpc.ClientConn
	httpURL string
	b       *blocker
	drained chan struct{}
}

func newFixture(t *testing.T, cfg pkgconfig.Service) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{life: service.NewLifecycle(log, cfg), b: &blocker{release: make(chan struct{}), entered: make(chan struct{}, 8)},
		drained: make(chan struct{})}

	srv, hs := grpc.NewServer(), health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(f.b.desc(), f.b)
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.life.GRPC("grpc", srv, hs, glis)

	mux := http.NewServeMux()
	mux.HandleFunc("/wait", func(w http.ResponseWriter, _ *http.Request) {
		f.b.entered <- struct{}{}
		<-f.b.release
		_, _ = io.WriteString(w, "finished")
	})
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.life.HTTP("http", &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}, hlis)
	f.httpURL = "http://" + hlis.Addr().String()
	f.life.OnDrain(func() { close(f.drained) })

	f.grpc, err = grpc.NewClient(glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.grpc.Close() })
	return f
}

func (f *fixture) call(ctx context.Context, method string) error {
	return f.grpc.Invoke(ctx, "/test.Blocker/"+method, &emptypb.Empty{}, &emptypb.Empty{})
}

func (f *fixture) health(t *testing.T, svc string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	r, err := healthpb.NewHealthClient(f.grpc).Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
	require.NoError(t, err)
	return r.GetStatus()
}

// run starts Run and returns its result channel and the function that cancels its context.
func (f *fixture) run() (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.life.Run(ctx) }()
	return done, cancel
}

// Stopping drains first: health says NOT_SERVING (overall and per service) while new calls are still
// served for the drain delay; then calls in flight finish, and only then does Run return.
func TestDrainThenGracefulStop(t *testing.T) {
	const drain = time.Second
	f := newFixture(t, pkgconfig.Service{DrainDelay: drain, ShutdownTimeout: 10 * time.Second})
	done, stop := f.run()
	require.Eventually(t, func() bool { return f.call(t.Context(), "Now") == nil }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, f.health(t, ""))
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, f.health(t, "test.Blocker"), "every registered service is reported")

	// Calls in flight on both servers.
	var wg sync.WaitGroup
	var grpcErr error
	var httpBody string
	wg.Go(func() { grpcErr = f.call(context.Background(), "Wait") })
	wg.Go(func() {
		resp, err := http.Get(f.httpURL + "/wait")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			httpBody = string(b)
		}
	})
	<-f.b.entered
	<-f.b.entered

	stopped := time.Now()
	stop()
	<-f.drained
	require.True(t, f.life.Draining())
	// The drain window: reported NOT_SERVING, still serving.
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.health(t, ""))
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.health(t, "test.Blocker"))
	require.NoError(t, f.call(t.Context(), "Now"), "new calls are still served while draining")
	select {
	case err := <-done:
		t.Fatalf("Run returned during the drain window: %v", err)
	default:
	}

	// Past the window the servers stop taking calls but wait for those in flight.
	time.Sleep(time.Until(stopped.Add(drain + 200*time.Millisecond)))
	select {
	case err := <-done:
		t.Fatalf("Run returned with calls in flight: %v", err)
	default:
	}
	close(f.b.release)
	wg.Wait()
	require.NoError(t, grpcErr, "the in-flight gRPC call finished")
	require.Equal(t, "finished", httpBody, "the in-flight HTTP request finished")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once the calls finished")
	}
	require.GreaterOrEqual(t, time.Since(stopped), drain)
}

// A call that outlives the shutdown budget is cut, and Run still returns in time, without error.
func TestShutdownTimeoutCutsCalls(t *testing.T) {
	f := newFixture(t, pkgconfig.Service{ShutdownTimeout: 300 * time.Millisecond})
	done, stop := f.run()
	require.Eventually(t, func() bool { return f.call(t.Context(), "Now") == nil }, 5*time.Second, 10*time.Millisecond)
	callErr := make(chan error, 1)
	go func() { callErr <- f.call(context.Background(), "Wait") }()
	<-f.b.entered
	stopped := time.Now()
	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the shutdown timeout")
	}
	require.Less(t, time.Since(stopped), 5*time.Second)
	require.Equal(t, codes.Unavailable, status.Code(<-callErr), "the cut call fails")
	close(f.b.release)
}

// Closers run in reverse registration order; a background loop stops before what it was registered
// after, and a server's failure stops the service without waiting for its context.
func TestOrderAndFailure(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	life := service.NewLifecycle(log, pkgconfig.Service{ShutdownTimeout: time.Second})
	var mu sync.Mutex
	var order []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s)
	}
	life.Push("redis", func(context.Context) error { record("redis"); return nil })
	life.Background("loop", func(ctx context.Context) error { <-ctx.Done(); record("loop"); return nil })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	life.HTTP("http", &http.Server{ReadHeaderTimeout: time.Second}, lis)
	require.NoError(t, lis.Close()) // Serve fails at once

	done := make(chan error, 1)
	go func() { done <- life.Run(context.Background()) }()
	select {
	case err := <-done:
		require.Error(t, err)
		require.False(t, errors.Is(err, context.Canceled))
	case <-time.After(10 * time.Second):
		t.Fatal("a failed server did not stop the service")
	}
	require.Equal(t, []string{"loop", "redis"}, order)
}
