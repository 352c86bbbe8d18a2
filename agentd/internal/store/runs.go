package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"
)

// Run statuses.
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunWaiting   = "waiting" // paused by ask_human until the user answers
	RunCompleted = "completed"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
	RunStopped   = "stopped" // a bound or repetition stopped it
)

// Lease identifies the holder of a run's lease. The zero Lease means "no lease" (unfenced writes).
type Lease struct {
	SessionID string
	RunID     string
	Token     string
}

// Run is a run's record.
type Run struct {
	ID           string
	SessionID    string
	OwnerID      string
	Status       string
	Prompt       string
	MessageID    string // the user message that started the run
	PrevRun      string // the session's run before this one, "" for the first
	ResumedFrom  string // the stopped, failed or cancelled run this one continues, if any
	Answer       string
	Checkpoint   []byte
	Cancel       bool
	Attempts     int
	Error        string
	Question     string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	InputTokens  int64
	OutputTokens int64
	CostUSD      float64
	// Cache counts are part of InputTokens: how many were read from or written to the prompt cache.
	CacheReadTokens  int64
	CacheWriteTokens int64
}

// StartOutcome says what PostMessage did with the user's message.
type StartOutcome string

// Outcomes of StartRun.
const (
	Started  StartOutcome = "started"
	Answered StartOutcome = "answer"  // the message answered the run waiting in ask_human
	Steered  StartOutcome = "steered" // the message went to the active run's lead (its inbox)
)

// StartRun records the user's message and starts a run for it, hands it as the answer to the run
// waiting for the user, or — while a run is queued or running — delivers it to that run's lead at
// its next turn. The caller enqueues the returned run id when one was started or answered.
func (s *Store) StartRun(ctx context.Context, ownerID string, msg *agentdv1.Event, newRunID string) (StartOutcome, string, error) {
	return s.startRun(ctx, ownerID, msg, newRunID, false)
}

// Answer hands the user's message to the run waiting for it; ErrNotWaiting when none waits.
func (s *Store) Answer(ctx context.Context, ownerID string, msg *agentdv1.Event) (string, error) {
	_, rid, err := s.startRun(ctx, ownerID, msg, "", true)
	return rid, err
}

func (s *Store) startRun(ctx context.Context, ownerID string, msg *agentdv1.Event, newRunID string, answerOnly bool) (StartOutcome, string, error) {
	sid := msg.GetSessionId()
	for range 10 {
		active, err := s.rdb.Get(ctx, sessionActiveKey(sid)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return "", "", fmt.Errorf("store: active run: %w", err)
		}
		activeRunKey, inbox := runKey(sid, newRunID), runInboxKey(sid, newRunID)
		if active != "" {
			activeRunKey, inbox = runKey(sid, active), runInboxKey(sid, active)
		}
		m := proto.CloneOf(msg)
		rid := newRunID
		if active != "" {
			rid = active
		}
		m.RunId = &rid
		evJSON, msgJSON, err := encodeEvent(m)
		if err != nil {
			return "", "", err
		}
		res, err := startRunScript.Run(ctx, s.rdb,
			append(appendKeys(sid), sessionActiveKey(sid), runKey(sid, newRunID), activeRunKey, sessionRunsKey(sid), sessionLastRunKey(sid), inbox),
			ownerID, active, newRunID, evJSON, msgJSON, s.now().UnixMilli(), msg.GetContent(), msg.GetMessageId(), sid, flag(answerOnly)).StringSlice()
		if err != nil {
			return "", "", fmt.Errorf("store: start run: %w", err)
		}
		switch res[0] {
		case "notfound":
			return "", "", ErrNotFound
		case "nowait":
			return "", res[1], ErrNotWaiting
		case "retry":
			continue
		default:
			return StartOutcome(res[0]), res[1], nil
		}
	}
	return "", "", fmt.Errorf("store: start run: %w", ErrRunActive)
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// LatestRun returns the id of the session's active run, else of its latest one, or "".
func (s *Store) LatestRun(ctx context.Context, sessionID string) (string, error) {
	ids, err := s.rdb.MGet(ctx, sessionActiveKey(sessionID), sessionLastRunKey(sessionID)).Result()
	if err != nil {
		return "", fmt.Errorf("store: latest run: %w", err)
	}
	for _, v := range ids {
		if id, ok := v.(string); ok && id != "" {
			return id, nil
		}
	}
	return "", nil
}

// ActiveRun returns the id of the session's active run, or "".
func (s *Store) ActiveRun(ctx context.Context, sessionID string) (string, error) {
	id, err := s.rdb.Get(ctx, sessionActiveKey(sessionID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: active run: %w", err)
	}
	return id, nil
}

// GetRun returns a run's record.
func (s *Store) GetRun(ctx context.Context, sessionID, runID string) (Run, error) {
	m, err := s.rdb.HGetAll(ctx, runKey(sessionID, runID)).Result()
	if err != nil {
		return Run{}, fmt.Errorf("store: get run: %w", err)
	}
	if m["id"] == "" {
		return Run{}, ErrNotFound
	}
	attempts, _ := strconv.Atoi(m["attempts"])
	in, _ := strconv.ParseInt(m["input_tokens"], 10, 64)
	out, _ := strconv.ParseInt(m["output_tokens"], 10, 64)
	cost, _ := strconv.ParseFloat(m["cost_usd"], 64)
	cacheRead, _ := strconv.ParseInt(m["cache_read_tokens"], 10, 64)
	cacheWrite, _ := strconv.ParseInt(m["cache_write_tokens"], 10, 64)
	created, _ := strconv.ParseInt(m["created_at"], 10, 64)
	updated, _ := strconv.ParseInt(m["updated_at"], 10, 64)
	return Run{
		Question: m["question"], MessageID: m["message_id"], PrevRun: m["prev_run"], ResumedFrom: m["resumed_from"], CreatedAt: time.UnixMilli(created).UTC(), UpdatedAt: time.UnixMilli(updated).UTC(),
		ID: m["id"], SessionID: m["session_id"], OwnerID: m["owner"], Status: m["status"],
		Prompt: m["prompt"], Answer: m["answer"], Checkpoint: []byte(m["checkpoint"]),
		Cancel: m["cancel"] == "1", Attempts: attempts, Error: m["error"],
		InputTokens: in, OutputTokens: out, CostUSD: cost, CacheReadTokens: cacheRead, CacheWriteTokens: cacheWrite,
	}, nil
}

// AcquireLease takes the run's lease for token. ok is false when another live replica holds it or the
// run no longer needs executing; status then says why ("held", "gone", or the run's status).
func (s *Store) AcquireLease(ctx context.Context, l Lease, ttl time.Duration) (ok bool, status string, err error) {
	res, err := acquireLeaseScript.Run(ctx, s.rdb, []string{runKey(l.SessionID, l.RunID), runLeaseKey(l.SessionID, l.RunID)},
		l.Token, ttl.Milliseconds(), s.now().UnixMilli()).Text()
	if err != nil {
		return false, "", fmt.Errorf("store: acquire lease: %w", err)
	}
	return res == "ok", res, nil
}

// RenewLease extends the lease. cancel reports that the run was asked to stop.
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (cancel bool, err error) {
	n, err := renewLeaseScript.Run(ctx, s.rdb, []string{runKey(l.SessionID, l.RunID), runLeaseKey(l.SessionID, l.RunID)},
		l.Token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("store: renew lease: %w", err)
	}
	if n < 0 {
		return false, ErrLeaseLost
	}
	return n == 1, nil
}

// Usage is token usage and cost to add to a run and its session.
type Usage struct {
	InputTokens      int64
	OutputTokens     int64
	CostUSD          float64
	CacheReadTokens  int64 // part of InputTokens
	CacheWriteTokens int64 // part of InputTokens
}

// ConvDelta is what a checkpoint appends to one stored conversation (a list of entries): Entries
// after the first Expect, or, with Drop, the conversation's deletion.
type ConvDelta struct {
	Key     string
	Expect  int
	Entries [][]byte
	Drop    bool
}

// Checkpoint saves the run's state — its head (opaque JSON) and what the step appended to its
// conversations — and adds usage to the run and the session.
func (s *Store) Checkpoint(ctx context.Context, l Lease, head []byte, deltas []ConvDelta, u Usage) error {
	sid := l.SessionID
	keys := []string{sessionKey(sid), runKey(sid, l.RunID), runLeaseKey(sid, l.RunID), sessionConvsKey(sid)}
	args := []any{l.Token, head, u.InputTokens, u.OutputTokens, strconv.FormatFloat(u.CostUSD, 'f', -1, 64), s.now().UnixMilli(),
		u.CacheReadTokens, u.CacheWriteTokens, len(deltas)}
	for _, d := range deltas {
		keys = append(keys, convKey(sid, d.Key))
		if d.Drop {
			args = append(args, -1, 0)
			continue
		}
		args = append(args, d.Expect, len(d.Entries))
		for _, e := range d.Entries {
			args = append(args, e)
		}
	}
	n, err := checkpointScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	switch n {
	case -1:
		return ErrLeaseLost
	case -2:
		return ErrConversationLost
	}
	return nil
}

// ConvRange names the stored entries of a conversation to load: Count entries from From.
type ConvRange struct {
	Key   string
	From  int
	Count int
}

// Conversations loads stored conversations' entries, by key.
func (s *Store) Conversations(ctx context.Context, sessionID string, ranges []ConvRange) (map[string][][]byte, error) {
	cmds := make([]*redis.StringSliceCmd, len(ranges))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range ranges {
			if r.Count > 0 {
				cmds[i] = p.LRange(ctx, convKey(sessionID, r.Key), int64(r.From), int64(r.From+r.Count-1))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: load conversations: %w", err)
	}
	out := make(map[string][][]byte, len(ranges))
	for i, r := range ranges {
		if cmds[i] == nil {
			continue
		}
		for _, e := range cmds[i].Val() {
			out[r.Key] = append(out[r.Key], []byte(e))
		}
	}
	return out, nil
}

// Inbox returns the messages posted to a run while it was active, from the from-th on.
func (s *Store) Inbox(ctx context.Context, sessionID, runID string, from int) ([]string, error) {
	msgs, err := s.rdb.LRange(ctx, runInboxKey(sessionID, runID), int64(from), -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: inbox: %w", err)
	}
	return msgs, nil
}

// LatestCheckpoint returns the head of the checkpoint of the session's latest run that has one, with
// that run's id and when it was written; an empty head before any.
func (s *Store) LatestCheckpoint(ctx context.Context, sessionID string) (runID string, head []byte, updated time.Time, err error) {
	rid, err := s.LatestRun(ctx, sessionID)
	for hops := 0; err == nil && rid != "" && hops < 8; hops++ {
		var vals []any
		vals, err = s.rdb.HMGet(ctx, runKey(sessionID, rid), "checkpoint", "updated_at", "prev_run").Result()
		if err != nil {
			break
		}
		if cp, _ := vals[0].(string); cp != "" {
			ms, _ := strconv.ParseInt(fmt.Sprint(vals[1]), 10, 64)
			return rid, []byte(cp), time.UnixMilli(ms).UTC(), nil
		}
		rid, _ = vals[2].(string)
	}
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("store: latest checkpoint: %w", err)
	}
	return "", nil, time.Time{}, nil
}

// SetResumedFrom records that the run continues prevRun.
func (s *Store) SetResumedFrom(ctx context.Context, l Lease, prevRun string) error {
	if err := s.rdb.HSet(ctx, runKey(l.SessionID, l.RunID), "resumed_from", prevRun).Err(); err != nil {
		return fmt.Errorf("store: resumed from: %w", err)
	}
	return nil
}

// ToolRecord is what is known of one tool call, keyed by its call id.
type ToolRecord struct {
	State  string `json:"state"` // "started" or "done"
	Tool   string `json:"tool"`
	Result string `json:"result,omitempty"`
	Error  bool   `json:"error,omitempty"`
	Token  string `json:"token,omitempty"` // the lease token of the replica that ran it
}

// BeginTool records that callID is about to execute. When the call has a record already, it returns
// it with started=false and the caller must not execute the call again.
func (s *Store) BeginTool(ctx context.Context, l Lease, callID, tool string) (started bool, prev ToolRecord, err error) {
	rec, _ := json.Marshal(ToolRecord{State: "started", Tool: tool, Token: l.Token})
	res, err := toolBeginScript.Run(ctx, s.rdb, []string{runToolsKey(l.SessionID, l.RunID), runLeaseKey(l.SessionID, l.RunID)},
		l.Token, callID, rec).Result()
	if err != nil {
		return false, ToolRecord{}, fmt.Errorf("store: begin tool: %w", err)
	}
	switch v := res.(type) {
	case int64:
		return false, ToolRecord{}, ErrLeaseLost
	case string:
		if v == "" {
			return true, ToolRecord{}, nil
		}
		if err := json.Unmarshal([]byte(v), &prev); err != nil {
			return false, ToolRecord{}, fmt.Errorf("store: decode tool record: %w", err)
		}
		return false, prev, nil
	}
	return false, ToolRecord{}, fmt.Errorf("store: begin tool: unexpected reply %T", res)
}

// EndTool records a tool call's result.
func (s *Store) EndTool(ctx context.Context, l Lease, callID string, rec ToolRecord) error {
	rec.State = "done"
	rec.Token = l.Token
	b, _ := json.Marshal(rec)
	n, err := toolEndScript.Run(ctx, s.rdb, []string{runToolsKey(l.SessionID, l.RunID), runLeaseKey(l.SessionID, l.RunID)},
		l.Token, callID, b).Int()
	if err != nil {
		return fmt.Errorf("store: end tool: %w", err)
	}
	if n < 0 {
		return ErrLeaseLost
	}
	return nil
}

// ToolRecords returns every tool record of a run, by call id.
func (s *Store) ToolRecords(ctx context.Context, sessionID, runID string) (map[string]ToolRecord, error) {
	m, err := s.rdb.HGetAll(ctx, runToolsKey(sessionID, runID)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: tool records: %w", err)
	}
	out := make(map[string]ToolRecord, len(m))
	for k, v := range m {
		var r ToolRecord
		_ = json.Unmarshal([]byte(v), &r)
		out[k] = r
	}
	return out, nil
}

// FinishRun moves the run to status (terminal or RunWaiting), releases the lease and appends ev
// when it is not nil.
func (s *Store) FinishRun(ctx context.Context, l Lease, status, errText string, ev *agentdv1.Event) (uint32, error) {
	return s.finishRun(ctx, l, status, errText, "", -1, ev)
}

// FinishRunAsking is FinishRun recording the question a waiting run asked.
func (s *Store) FinishRunAsking(ctx context.Context, l Lease, status, errText, question string, ev *agentdv1.Event) (uint32, error) {
	return s.finishRun(ctx, l, status, errText, question, -1, ev)
}

// CompleteRun is FinishRun for a run whose lead ended it, having read read messages of the run's
// inbox: ErrInboxUnread when the user posted more meanwhile, and the run is then not finished.
func (s *Store) CompleteRun(ctx context.Context, l Lease, read int, ev *agentdv1.Event) (uint32, error) {
	return s.finishRun(ctx, l, RunCompleted, "", "", read, ev)
}

func (s *Store) finishRun(ctx context.Context, l Lease, status, errText, question string, read int, ev *agentdv1.Event) (uint32, error) {
	var evJSON, msgJSON string
	if ev != nil {
		var err error
		if evJSON, msgJSON, err = encodeEvent(ev); err != nil {
			return 0, err
		}
	}
	sid := l.SessionID
	check := ""
	if read >= 0 {
		check = strconv.Itoa(read)
	}
	seq, err := finishRunScript.Run(ctx, s.rdb,
		append(appendKeys(sid), sessionActiveKey(sid), runKey(sid, l.RunID), runLeaseKey(sid, l.RunID), runInboxKey(sid, l.RunID)),
		l.Token, status, evJSON, msgJSON, s.now().UnixMilli(), errText, l.RunID, question, check).Int64()
	if err != nil {
		return 0, fmt.Errorf("store: finish run: %w", err)
	}
	switch seq {
	case -1:
		return 0, ErrLeaseLost
	case -2:
		return 0, ErrInboxUnread
	}
	return uint32(seq), nil
}

// CancelOutcome says what CancelRun did.
type CancelOutcome string

// Outcomes of CancelRun.
const (
	CancelInactive  CancelOutcome = "inactive"  // no run to cancel
	CancelDone      CancelOutcome = "cancelled" // the run was not executing and is now cancelled
	CancelSignalled CancelOutcome = "signalled" // the executing replica was asked to stop it
)

// CancelRun cancels the session's active run runID; ev is appended when the run is cancelled here.
func (s *Store) CancelRun(ctx context.Context, ownerID, sessionID, runID string, ev *agentdv1.Event) (CancelOutcome, error) {
	evJSON, msgJSON, err := encodeEvent(ev)
	if err != nil {
		return "", err
	}
	res, err := cancelRunScript.Run(ctx, s.rdb,
		append(appendKeys(sessionID), sessionActiveKey(sessionID), runKey(sessionID, runID)),
		ownerID, runID, evJSON, s.now().UnixMilli(), msgJSON).Text()
	if err != nil {
		return "", fmt.Errorf("store: cancel run: %w", err)
	}
	if res == "notfound" {
		return "", ErrNotFound
	}
	if res == string(CancelSignalled) {
		// Best effort: the flag is authoritative, the message only makes the stop immediate.
		s.rdb.Publish(ctx, CancelChannel, sessionID+"/"+runID)
	}
	return CancelOutcome(res), nil
}

// QueueEntry is one delivery of the run queue.
type QueueEntry struct {
	ID        string
	SessionID string
	RunID     string
}

// EnsureQueue creates the run queue's consumer group.
func (s *Store) EnsureQueue(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, RunQueueStream, RunQueueGroup, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("store: create run queue group: %w", err)
	}
	return nil
}

// Enqueue puts a run on the queue.
func (s *Store) Enqueue(ctx context.Context, sessionID, runID string) error {
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: RunQueueStream,
		MaxLen: 100000,
		Approx: true,
		Values: map[string]any{"session_id": sessionID, "run_id": runID},
	}).Err()
	if err != nil {
		return fmt.Errorf("store: enqueue run: %w", err)
	}
	return nil
}

// ReadQueue waits up to block for new entries for consumer.
func (s *Store) ReadQueue(ctx context.Context, consumer string, count int64, block time.Duration) ([]QueueEntry, error) {
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: RunQueueGroup, Consumer: consumer, Streams: []string{RunQueueStream, ">"},
		Count: count, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read run queue: %w", err)
	}
	var out []QueueEntry
	for _, st := range res {
		out = append(out, queueEntries(st.Messages)...)
	}
	return out, nil
}

// ClaimIdle claims entries delivered to any consumer and not acknowledged for minIdle: their replica
// may have died. The run's lease decides whether they really are orphaned.
func (s *Store) ClaimIdle(ctx context.Context, consumer string, minIdle time.Duration, count int64) ([]QueueEntry, error) {
	msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: RunQueueStream, Group: RunQueueGroup, Consumer: consumer,
		MinIdle: minIdle, Start: "0-0", Count: count,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: claim run queue: %w", err)
	}
	return queueEntries(msgs), nil
}

// Ack acknowledges a queue entry: the run is finished, waiting, or handled elsewhere.
func (s *Store) Ack(ctx context.Context, entryID string) error {
	if err := s.rdb.XAck(ctx, RunQueueStream, RunQueueGroup, entryID).Err(); err != nil {
		return fmt.Errorf("store: ack run: %w", err)
	}
	return nil
}

func queueEntries(msgs []redis.XMessage) []QueueEntry {
	out := make([]QueueEntry, 0, len(msgs))
	for _, m := range msgs {
		sid, _ := m.Values["session_id"].(string)
		rid, _ := m.Values["run_id"].(string)
		out = append(out, QueueEntry{ID: m.ID, SessionID: sid, RunID: rid})
	}
	return out
}

// ReleaseLease gives up the run's lease without changing the run, for a replica shutting down.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	if err := releaseLeaseScript.Run(ctx, s.rdb, []string{runLeaseKey(l.SessionID, l.RunID)}, l.Token).Err(); err != nil {
		return fmt.Errorf("store: release lease: %w", err)
	}
	return nil
}
