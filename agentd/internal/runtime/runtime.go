// Package runtime executes queued runs: it consumes the run queue (a Redis stream with a consumer
// group), holds a lease on each run it executes, renews it, checkpoints through the workflow, stops
// runs on cancel, and takes over runs whose replica died.
package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
)

var (
	errCancelled = errors.New("run cancelled by the user")
	errLeaseLost = errors.New("run lease lost to another replica")
)

// Options configures the runtime.
type Options struct {
	// Consumer names this replica in the queue's consumer group; it must be unique per replica.
	Consumer string
	// LeaseTTL is how long a run stays owned by a replica that stopped renewing; takeover happens
	// after it.
	LeaseTTL time.Duration
	// MaxConcurrent bounds the runs this replica executes at once.
	MaxConcurrent int
	// ProviderNotice, when set, is said in the session at the start of every run (the scripted
	// provider announces itself).
	ProviderNotice string
	// HistoryTokens bounds the session's earlier conversation a new run's lead is given.
	HistoryTokens int
}

// Runtime executes runs.
type Runtime struct {
	store  *store.Store
	engine *workflow.Engine
	log    *slog.Logger
	opts   Options

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // run id → its cancel
	wg      sync.WaitGroup
	slots   chan struct{}
}

// New returns a runtime.
func New(st *store.Store, engine *workflow.Engine, log *slog.Logger, opts Options) *Runtime {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 4
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	return &Runtime{store: st, engine: engine, log: log, opts: opts, running: map[string]context.CancelCauseFunc{},
		slots: make(chan struct{}, opts.MaxConcurrent)}
}

// Run consumes the queue until ctx ends, then stops the runs it executes, releasing their leases so
// another replica resumes them from their last checkpoint.
func (r *Runtime) Run(ctx context.Context) error {
	if err := r.store.EnsureQueue(ctx); err != nil {
		return err
	}
	sub := r.store.Client().Subscribe(ctx, store.CancelChannel)
	defer sub.Close()
	go r.cancellations(ctx, sub.Channel())
	go r.claimer(ctx)
	for ctx.Err() == nil {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		// A short block: the read is not interrupted by ctx, so it bounds how long a shutdown waits.
		entries, err := r.store.ReadQueue(ctx, r.opts.Consumer, 1, time.Second)
		if err != nil {
			<-r.slots
			if ctx.Err() == nil {
				r.log.Warn("reading the run queue failed", "err", err)
				if strings.Contains(err.Error(), "NOGROUP") {
					// The stream was deleted (e.g. a flushed Redis): recreate the group.
					_ = r.store.EnsureQueue(ctx)
				}
				sleep(ctx, time.Second)
			}
			continue
		}
		if len(entries) == 0 {
			<-r.slots
			continue
		}
		r.start(ctx, entries[0])
	}
	r.wg.Wait()
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// start handles an entry in the background; the caller holds a slot, which the handler frees.
func (r *Runtime) start(ctx context.Context, e store.QueueEntry) {
	r.wg.Go(func() {
		defer func() { <-r.slots }()
		r.handle(ctx, e)
	})
}

// claimer takes over queue entries whose replica stopped acknowledging them; the lease decides
// whether the run is really orphaned.
func (r *Runtime) claimer(ctx context.Context) {
	interval := r.opts.LeaseTTL / 2
	for {
		sleep(ctx, interval)
		if ctx.Err() != nil {
			return
		}
		entries, err := r.store.ClaimIdle(ctx, r.opts.Consumer, r.opts.LeaseTTL, 16)
		if err != nil {
			r.log.Warn("claiming idle runs failed", "err", err)
			continue
		}
		for _, e := range entries {
			select {
			case r.slots <- struct{}{}:
				r.start(ctx, e)
			case <-ctx.Done():
				return
			}
		}
	}
}

func (r *Runtime) cancellations(ctx context.Context, ch <-chan *redis.Message) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			_, runID, _ := strings.Cut(m.Payload, "/")
			r.mu.Lock()
			cancel := r.running[runID]
			r.mu.Unlock()
			if cancel != nil {
				cancel(errCancelled)
			}
		}
	}
}

func (r *Runtime) handle(ctx context.Context, e store.QueueEntry) {
	r.mu.Lock()
	_, busy := r.running[e.RunID]
	r.mu.Unlock()
	if busy {
		return
	}
	lease := store.Lease{SessionID: e.SessionID, RunID: e.RunID, Token: r.opts.Consumer + "/" + uuid.NewString()}
	ok, status, err := r.store.AcquireLease(ctx, lease, r.opts.LeaseTTL)
	if err != nil {
		r.log.Warn("acquiring a run lease failed", "run", e.RunID, "err", err)
		return
	}
	if !ok {
		if status != "held" {
			// Finished, cancelled, waiting for the user, or deleted: nothing left to do here.
			_ = r.store.Ack(ctx, e.ID)
		}
		return
	}
	log := r.log.With("session", e.SessionID, "run", e.RunID, "replica", r.opts.Consumer)
	// Which replica executes which run is what an operator needs to follow a takeover.
	log.Info("executing run")
	runsExecuting.Add(ctx, 1)
	defer runsExecuting.Add(context.WithoutCancel(ctx), -1)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	r.running[e.RunID] = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, e.RunID)
		r.mu.Unlock()
	}()
	stopRenew := r.renew(runCtx, lease, cancel, log)
	defer stopRenew()

	if r.newRun(lease, log).execute(runCtx) {
		_ = r.store.Ack(context.WithoutCancel(ctx), e.ID)
	}
}

// renew keeps the lease alive and turns a cancel request or a lost lease into the run's cancellation.
func (r *Runtime) renew(ctx context.Context, l store.Lease, cancel context.CancelCauseFunc, log *slog.Logger) func() {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(r.opts.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cancelled, err := r.store.RenewLease(ctx, l, r.opts.LeaseTTL)
			switch {
			case errors.Is(err, store.ErrLeaseLost):
				log.Warn("lost the run's lease; another replica owns it now")
				cancel(errLeaseLost)
				return
			case err != nil:
				log.Warn("renewing the run's lease failed", "err", err)
			case cancelled:
				cancel(errCancelled)
			}
		}
	}()
	return func() { close(stop) }
}
