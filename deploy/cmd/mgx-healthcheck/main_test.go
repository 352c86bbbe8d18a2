package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestCheck(t *testing.T) {
	hs := health.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	var status atomic.Int32
	status.Store(http.StatusOK)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }))
	t.Cleanup(web.Close)

	require.NoError(t, check(t.Context(), "grpc", l.Addr().String()))
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	require.ErrorContains(t, check(t.Context(), "grpc", l.Addr().String()), "NOT_SERVING")

	require.NoError(t, check(t.Context(), "http", web.URL))
	status.Store(http.StatusServiceUnavailable)
	require.ErrorContains(t, check(t.Context(), "http", web.URL), "503")

	require.Error(t, check(t.Context(), "tcp", "x"))
}
