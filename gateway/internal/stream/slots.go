package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgx-ai/mgx/gateway/internal/store"
	"github.com/mgx-ai/mgx/pkg/quota"
	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// streamRetryAfter is the Retry-After of a refused stream: streams end when their clients go, so
// "soon" is the honest hint.
const streamRetryAfter = 5 * time.Second

// streamLease is how long a stream's slot outlives a gateway replica that died holding it.
const streamLease = 30 * time.Second

// Slots bounds each user's open streams across every gateway replica: event streams (WebSocket and
// SSE), followed process logs and streamed commands count alike against GATEWAY_MAX_STREAMS_PER_USER.
// Each open stream holds a slot in the gateway's Redis, renewed while it is open.
type Slots struct {
	sem *quota.Semaphore
	max int
	log *slog.Logger
}

// NewSlots returns max slots per user, kept in rdb.
func NewSlots(rdb redis.UniversalClient, max int, logger *slog.Logger) *Slots {
	return &Slots{sem: quota.New(rdb, quota.Options{Lease: streamLease, Logger: logger}), max: max, log: logger}
}

// Max is the number of streams a user may keep open.
func (s *Slots) Max() int { return s.max }

// Acquire takes one of userID's slots until release is called or ctx ends. When every slot is taken
// the error is TOO_MANY_STREAMS with a Retry-After.
func (s *Slots) Acquire(ctx context.Context, userID string) (release func(), err error) {
	slot, err := s.sem.Acquire(ctx, store.KeyUserStreams(userID), s.max)
	if errors.Is(err, quota.ErrFull) {
		return nil, rpcerr.New(errorsv1.ErrorReason_TOO_MANY_STREAMS,
			fmt.Sprintf("too many open streams (at most %d per user: event streams, followed logs and streamed commands together); close one", s.max),
			map[string]string{rpcerr.MetaRetryAfter: strconv.Itoa(int(streamRetryAfter.Seconds()))})
	}
	if err != nil {
		return nil, rpcerr.Fail(ctx, s.log, errorsv1.ErrorReason_UNAVAILABLE, err)
	}
	return slot.Release, nil
}
