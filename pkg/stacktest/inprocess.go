package stacktest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mgx-ai/mgx/pkg/service"
)

// Service is a service running in the test's own process.
type Service[A service.App] struct {
	// App is the built app: tests reach its parts through it.
	App A
	// Log is the service's log so far.
	Log     *Buffer
	cancel  context.CancelFunc
	running *service.Running[A]
}

// InProcess starts a service in the test's process through service.Start, which is what its main
// runs: the same configuration loading (env is the whole environment), logger, telemetry and
// composition root (newApp, the service's app.New). Its log is kept like a child's output and shown
// when the test fails. The service stops — draining and closing as on SIGTERM — when t ends, unless
// the test stopped it first.
func InProcess[C service.Config, A service.App](t testing.TB, name string, newApp service.NewFunc[C, A], env map[string]string) *Service[A] {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	out := &Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := service.Start(ctx, name, newApp, service.Options{Environ: env, LogOutput: out})
	if err != nil {
		cancel()
		t.Fatalf("stacktest: %s did not start: %v\n%s", name, err, out.String())
	}
	s := &Service[A]{App: r.App, Log: out, cancel: cancel, running: r}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("stacktest: %s stopped with: %v", name, err)
		}
		if t.Failed() || os.Getenv("MGX_TEST_LOG") != "" {
			t.Logf("---- %s (in process) log ----\n%s", name, out.String())
		}
	})
	return s
}

// Stop ends the service as a signal would (drain, then close) and waits for it, at most StopGrace.
func (s *Service[A]) Stop() error {
	s.cancel()
	select {
	case <-s.running.Done():
		return s.running.Wait()
	case <-time.After(StopGrace):
		return context.DeadlineExceeded
	}
}

// Done is closed once the service has stopped.
func (s *Service[A]) Done() <-chan struct{} { return s.running.Done() }
