// Package health answers GET /healthz: the gateway's own state (its Redis)
// and each upstream's grpc.health.v1 status.
package health

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	gatewayv1 "github.com/mgx-ai/mgx/proto/gen/mgx/gateway/v1"
)

// Statuses reported per service.
const (
	Serving     = "SERVING"
	NotServing  = "NOT_SERVING"
	Unreachable = "UNREACHABLE"
)

// Service implements gatewayv1.HealthServiceServer.
type Service struct {
	gatewayv1.UnimplementedHealthServiceServer

	self      func(context.Context) error
	upstreams map[string]grpc.ClientConnInterface
	timeout   time.Duration
}

// New returns the health service. self checks the gateway's own
// dependencies; upstreams are probed with grpc.health.v1.
func New(self func(context.Context) error, upstreams map[string]grpc.ClientConnInterface, timeout time.Duration) *Service {
	return &Service{self: self, upstreams: upstreams, timeout: timeout}
}

// Check implements gatewayv1.HealthServiceServer. Probes run in parallel
// with one short deadline, so a hung upstream costs /healthz that deadline,
// not one per service.
func (s *Service) Check(ctx context.Context, _ *gatewayv1.CheckRequest) (*gatewayv1.CheckResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	resp := &gatewayv1.CheckResponse{Status: "ok", Services: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	set := func(name, st string) {
		mu.Lock()
		defer mu.Unlock()
		resp.Services[name] = st
		if st != Serving {
			resp.Status = "degraded"
		}
	}
	wg.Go(func() {
		if err := s.self(ctx); err != nil {
			set("gateway", NotServing)
			return
		}
		set("gateway", Serving)
	})
	for name, cc := range s.upstreams {
		wg.Go(func() {
			r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			switch {
			case err != nil:
				set(name, Unreachable)
			case r.GetStatus() == healthpb.HealthCheckResponse_SERVING:
				set(name, Serving)
			default:
				set(name, NotServing)
			}
		})
	}
	wg.Wait()
	return resp, nil
}
