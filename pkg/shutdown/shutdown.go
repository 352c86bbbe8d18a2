// Package shutdown stops a service in a fixed order: the reverse of the
// order its parts were started in, so nothing is closed while something
// started after it (and possibly using it) still runs. A typical root pushes
// telemetry first and the gRPC server last; at shutdown the server drains
// first, then Redis closes, then telemetry flushes the spans of all of it.
package shutdown

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// Stack is an ordered set of closers run last-in, first-out. The zero value
// is not usable; call NewStack. A Stack is safe for concurrent use.
type Stack struct {
	logger *slog.Logger

	mu      sync.Mutex
	closers []closer
	state   state
}

type state int

const (
	open    state = iota
	closing       // Close is running: Push still stacks
	closed        // Close returned: Push runs at once
)

type closer struct {
	name string
	fn   func(context.Context) error
}

// NewStack returns an empty stack logging to logger (nil means
// slog.Default()).
func NewStack(logger *slog.Logger) *Stack {
	if logger == nil {
		logger = slog.Default()
	}
	return &Stack{logger: logger}
}

// Push adds a closer, to run before every closer pushed earlier. name
// appears in logs and errors.
//
// A closer pushed while Close runs is run by that Close, next, since it is
// now on top. One pushed after Close returned is run at once: what a
// goroutine opened during shutdown must still be released.
func (s *Stack) Push(name string, fn func(context.Context) error) {
	s.mu.Lock()
	if s.state != closed {
		s.closers = append(s.closers, closer{name, fn})
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	// Not bounded by any caller's deadline: there is no caller waiting.
	_ = s.run(context.Background(), closer{name, fn})
}

// Close runs the closers in LIFO order and returns their errors joined.
// Each closer receives ctx, and Close stops waiting for it when ctx is done,
// so a closer that ignores ctx cannot hold the process past the shutdown
// deadline. Once ctx is done the closers not yet run are skipped, each
// reported in the error: the process is about to exit, which releases what
// they hold, and with an expired ctx they could not do their work anyway.
// Calling Close again is a no-op.
func (s *Stack) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.state != open {
		s.mu.Unlock()
		return nil
	}
	s.state = closing
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.state = closed
		s.mu.Unlock()
	}()

	var errs []error
	for {
		// Pop under the lock, one at a time, so a Push from a running
		// closer lands on top and runs next.
		s.mu.Lock()
		if len(s.closers) == 0 {
			s.mu.Unlock()
			break
		}
		c := s.closers[len(s.closers)-1]
		s.closers = s.closers[:len(s.closers)-1]
		s.mu.Unlock()

		if ctx.Err() != nil {
			s.logger.ErrorContext(ctx, "shutdown: skipped, deadline passed", "component", c.name)
			errs = append(errs, fmt.Errorf("%s: skipped: %w", c.name, context.Cause(ctx)))
			continue
		}
		if err := s.run(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Stack) run(ctx context.Context, c closer) error {
	start := time.Now()
	s.logger.InfoContext(ctx, "shutdown: closing", "component", c.name)

	done := make(chan error, 1)
	go func() {
		defer func() {
			// A panicking closer must not skip the ones below it.
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- c.fn(ctx)
	}()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// The closer keeps running in its goroutine; the process is about
		// to exit, which ends it.
		err = fmt.Errorf("abandoned: %w", context.Cause(ctx))
	}
	took := time.Since(start)
	if err != nil {
		s.logger.ErrorContext(ctx, "shutdown: close failed", "component", c.name, "took", took, "error", err)
		return fmt.Errorf("%s: %w", c.name, err)
	}
	s.logger.InfoContext(ctx, "shutdown: closed", "component", c.name, "took", took)
	return nil
}

// ErrForcedStop is returned by GracefulStop when calls were still running at
// the deadline and were cut.
var ErrForcedStop = errors.New("shutdown: gRPC server stopped forcibly after the drain timeout")

// GracefulStop stops srv from taking new calls and lets running calls finish
// until ctx is done, then cuts whatever still runs. Reporting NOT_SERVING
// comes before, in the drain phase (package service), so balancers have
// already stopped sending calls when this refuses them.
//
// Long-lived streams (event subscriptions, health Watch) never finish on
// their own, so with any open the deadline is always reached: keep it short
// (seconds), clients reconnect elsewhere.
func GracefulStop(ctx context.Context, srv *grpc.Server) error {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// Stop closes every connection, which makes GracefulStop return.
		srv.Stop()
		<-done
		return ErrForcedStop
	}
}
