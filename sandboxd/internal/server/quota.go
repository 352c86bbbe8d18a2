package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/pkg/quota"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

// quotaRetryAfter is the Retry-After of a refused command or process: both end by themselves or on
// the user's word, so "soon" is the honest hint.
const quotaRetryAfter = 5 * time.Second

// Quotas bounds what one user runs at once, over all their sandboxes and every sandboxd replica:
// commands (Exec, ExecStream) and background processes. A zero limit means none.
//
// Commands hold a slot in Redis while they run (pkg/quota: a lease renewed while the command runs,
// freed one lease after a replica dies). Background processes outlive the call that starts them and
// end without telling sandboxd, so they are counted where they live, in the sandboxes' agents,
// when one more is started; the count and the start are serialised per user across replicas.
type Quotas struct {
	MaxExecs     int
	MaxProcesses int
	sem          *quota.Semaphore
}

// NewQuotas returns the quotas, kept in sandboxd's Redis.
func NewQuotas(rdb redis.UniversalClient, maxExecs, maxProcesses int, log *slog.Logger) *Quotas {
	return &Quotas{MaxExecs: maxExecs, MaxProcesses: maxProcesses, sem: quota.New(rdb, quota.Options{Logger: log})}
}

// quotaError says a user's quota is used up.
type quotaError struct {
	what  string // "commands", "processes"
	limit int
	hint  string
}

func (e *quotaError) Error() string {
	return fmt.Sprintf("too many %s running (at most %d per user); %s", e.what, e.limit, e.hint)
}

func (e *quotaError) status() error {
	return rpcerr.New(errorsv1.ErrorReason_QUOTA_EXCEEDED, e.Error(), map[string]string{
		rpcerr.MetaRetryAfter: strconv.Itoa(int(quotaRetryAfter.Seconds())),
		"quota":               e.what,
		"limit":               strconv.Itoa(e.limit),
	})
}

// exec takes one of the user's command slots for as long as the command runs (until release or
// ctx ends).
func (q *Quotas) exec(ctx context.Context, userID string) (release func(), err error) {
	if q == nil || q.MaxExecs <= 0 || userID == "" {
		return func() {}, nil
	}
	slot, err := q.sem.Acquire(ctx, store.KeyUserExecs(userID), q.MaxExecs)
	if errors.Is(err, quota.ErrFull) {
		return nil, &quotaError{what: "commands", limit: q.MaxExecs, hint: "wait for one to finish"}
	}
	if err != nil {
		return nil, err
	}
	return slot.Release, nil
}

// processStartWait bounds how long a process start waits for the user's other process starts.
const processStartWait = 30 * time.Second

// startProcess admits one more background process of the user: it returns once the user's running
// processes are fewer than the limit, holding the user's process-start lock, which done releases
// (after the start, so a concurrent start counts this one).
func (q *Quotas) startProcess(ctx context.Context, m *sandbox.Manager, userID string) (done func(), err error) {
	if q == nil || q.MaxProcesses <= 0 || userID == "" {
		return func() {}, nil
	}
	// Held for the call (ctx), not for the wait: the lock must outlast the start it admits.
	lock, err := q.sem.AcquireWait(ctx, store.KeyUserProcessStart(userID), 1, processStartWait)
	if err != nil {
		return nil, errors.Join(sandbox.ErrUnavailable, err)
	}
	running, err := runningProcesses(ctx, m, userID)
	if err != nil {
		lock.Release()
		return nil, err
	}
	if running >= q.MaxProcesses {
		lock.Release()
		return nil, &quotaError{what: "background processes", limit: q.MaxProcesses, hint: "stop one first"}
	}
	return lock.Release, nil
}

// runningProcesses counts the user's running background processes over all their running
// sandboxes. A sandbox whose agent does not answer is counted as having none: it is dead or being
// replaced, and its processes with it.
func runningProcesses(ctx context.Context, m *sandbox.Manager, userID string) (int, error) {
	recs, err := m.List(ctx, userID, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		ps, err := m.LiveProcesses(ctx, r.SessionID)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			continue
		}
		for _, p := range ps {
			if p.State == "running" {
				n++
			}
		}
	}
	return n, nil
}
