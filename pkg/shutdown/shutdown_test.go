package shutdown

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func quietStack() *Stack { return NewStack(slog.New(slog.DiscardHandler)) }

func TestCloseOrderAndErrors(t *testing.T) {
	errRedis := errors.New("redis close failed")
	errTelemetry := errors.New("flush failed")

	tests := []struct {
		name    string
		fail    map[string]error
		wantErr []error
	}{
		{"all succeed", nil, nil},
		{"one fails, rest still run", map[string]error{"redis": errRedis}, []error{errRedis}},
		{"errors joined", map[string]error{"redis": errRedis, "telemetry": errTelemetry}, []error{errRedis, errTelemetry}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := quietStack()
			var ran []string
			for _, name := range []string{"telemetry", "redis", "grpc"} {
				s.Push(name, func(context.Context) error {
					ran = append(ran, name)
					return tt.fail[name]
				})
			}
			err := s.Close(t.Context())
			require.Equal(t, []string{"grpc", "redis", "telemetry"}, ran)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			for _, want := range tt.wantErr {
				require.ErrorIs(t, err, want)
			}
			require.ErrorContains(t, err, "redis: ")
		})
	}
}

func TestCloseAbandonsCloserPastDeadline(t *testing.T) {
	s := quietStack()
	ctx, cancel := context.WithCancel(t.Context())
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })

	lastRan := false
	s.Push("last", func(context.Context) error { lastRan = true; return nil })
	s.Push("stuck", func(context.Context) error {
		cancel() // the shutdown deadline passes while this closer hangs
		<-release
		return nil
	})

	err := s.Close(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "stuck: abandoned")
	require.ErrorContains(t, err, "last: skipped")
	require.False(t, lastRan, "closers after the deadline are skipped")
}

func TestClosePanickingCloser(t *testing.T) {
	s := quietStack()
	lastRan := false
	s.Push("last", func(context.Context) error { lastRan = true; return nil })
	s.Push("bad", func(context.Context) error { panic("oops") })
	err := s.Close(t.Context())
	require.ErrorContains(t, err, "bad: panic: oops")
	require.True(t, lastRan)
}

func TestPushDuringAndAfterClose(t *testing.T) {
	s := quietStack()
	var mu sync.Mutex
	var ran []string
	record := func(name string) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, name)
			return nil
		}
	}
	s.Push("first", record("first"))
	s.Push("second", func(ctx context.Context) error {
		s.Push("pushed-while-closing", record("pushed-while-closing"))
		return record("second")(ctx)
	})

	require.NoError(t, s.Close(t.Context()))
	require.Equal(t, []string{"second", "pushed-while-closing", "first"}, ran)

	s.Push("late", record("late"))
	require.Equal(t, "late", ran[len(ran)-1], "a Push after Close runs at once")
	require.NoError(t, s.Close(t.Context()), "second Close is a no-op")
	require.Len(t, ran, 4)
}

// serveHealth runs a gRPC server with a health service on loopback.
func serveHealth(t *testing.T) (*grpc.Server, *health.Server, healthpb.HealthClient) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return srv, hs, healthpb.NewHealthClient(cc)
}

func TestGracefulStop(t *testing.T) {
	tests := []struct {
		name       string
		openStream bool
		wantErr    error
	}{
		{"idle server drains", false, nil},
		{"open stream is cut at the deadline", true, ErrForcedStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hs, client := serveHealth(t)

			var watch healthpb.Health_WatchClient
			if tt.openStream {
				var err error
				watch, err = client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
				require.NoError(t, err)
				first, err := watch.Recv()
				require.NoError(t, err)
				require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.GetStatus())
			} else {
				_, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{})
				require.NoError(t, err)
			}

			// The drain phase (package service) reports NOT_SERVING first.
			hs.Shutdown()
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			err := GracefulStop(ctx, srv)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			// The watcher was told NOT_SERVING before the cut.
			next, err := watch.Recv()
			require.NoError(t, err)
			require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, next.GetStatus())
		})
	}
}
