package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/agentd/internal/events"
	"github.com/mgx-ai/mgx/agentd/internal/llm"
	"github.com/mgx-ai/mgx/agentd/internal/registry"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/tools"
	"github.com/mgx-ai/mgx/agentd/internal/workflow"
	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// BenchmarkCheckpointBytes measures the bytes a run writes to Redis per step — Redis's own count of
// bytes received (INFO total_net_input_bytes) — for runs of 10, 50 and 150 member steps with 8 KB
// tool outputs, with the checkpoints of this design (a small head plus what the step appended to the
// conversations) next to the design before it (the whole state rewritten at every step), both
// measured in the same run on the same Redis. Everything else a step writes (events, tool records)
// is the same in both, so the difference is the checkpoint's.
//
//	go test -run '^$' -bench CheckpointBytes -benchtime 1x ./internal/runtime/   (make bench-agentd)
func BenchmarkCheckpointBytes(b *testing.B) {
	url := stacktest.Redis(b)
	opt, err := redis.ParseURL(url)
	require.NoError(b, err)
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { _ = rdb.Close() })
	reg, err := registry.Load("", tools.Known)
	require.NoError(b, err)
	for _, steps := range []int{10, 50, 150} {
		for _, design := range []string{"incremental", "whole-state"} {
			b.Run(fmt.Sprintf("steps=%d/%s", steps, design), func(b *testing.B) {
				var perStep, checkpointPerStep float64
				for b.Loop() {
					perStep, checkpointPerStep = measureRun(b, rdb, reg, steps, design == "whole-state")
				}
				b.ReportMetric(perStep, "B/step")
				b.ReportMetric(checkpointPerStep, "checkpoint-B/step")
			})
		}
	}
}

// stepper plays a run: Mike delegates, Alex runs steps shell commands and reports, Mike ends.
type stepper struct{ steps int }

func (*stepper) Name() string  { return "bench" }
func (*stepper) Offline() bool { return false }

func (p *stepper) Complete(_ context.Context, req llm.Request, _ llm.Stream) (llm.Response, error) {
	calls := 0
	for _, m := range req.Messages {
		calls += len(m.ToolCalls)
	}
	call := func(name string, args any) llm.Response {
		b, _ := json.Marshal(args)
		return llm.Response{Stop: llm.StopToolUse, Usage: llm.Usage{InputTokens: 1000, OutputTokens: 50},
			ToolCalls: []llm.ToolCall{{ID: "c" + strconv.Itoa(calls), Name: name, Arguments: string(b)}}}
	}
	switch {
	case req.Agent == registry.LeadName && calls == 0:
		return call(tools.SendMessage, map[string]string{"to": "alex", "content": "run the steps"}), nil
	case req.Agent == registry.LeadName:
		return call(tools.End, map[string]string{"summary": "All steps ran."}), nil
	case calls < p.steps:
		return call(tools.SandboxShell, map[string]string{"command": fmt.Sprintf("make step-%d", calls+1)}), nil
	}
	return call(tools.SendMessage, map[string]string{"to": "mike", "content": "done"}), nil
}

// bigOutputs answers every sandbox call with 8 KB of output.
type bigOutputs struct{}

func (bigOutputs) Execute(_ context.Context, c tools.Call) (tools.Result, error) {
	return tools.Result{Output: c.Args + "\n" + strings.Repeat("a line of a long build log\n", 300)}, nil
}

// wholeState is the design before: the whole state, every conversation included, rewritten into the
// run's record at every checkpoint.
type wholeState struct {
	*run
	bytes int
}

func (w *wholeState) Checkpoint(ctx context.Context, st *workflow.State, u workflow.Usage) error {
	convs := map[string][]llm.Message{}
	for k, c := range st.Convs {
		convs[k] = c.Messages
	}
	b, err := json.Marshal(struct {
		*workflow.State
		Messages map[string][]llm.Message `json:"messages"`
	}{st, convs})
	if err != nil {
		return err
	}
	w.bytes += len(b)
	return w.store.Checkpoint(ctx, w.lease, b, nil, storeUsage(u))
}

// counted is this design's host, counting the checkpoint bytes it sends.
type counted struct {
	*run
	bytes int
}

func (c *counted) Checkpoint(ctx context.Context, st *workflow.State, u workflow.Usage) error {
	head, deltas, undo, err := st.Commit()
	if err != nil {
		return err
	}
	undo()
	c.bytes += len(head)
	for _, d := range deltas {
		for _, m := range d.Messages {
			c.bytes += len(m)
		}
	}
	return c.run.Checkpoint(ctx, st, u)
}

func measureRun(b *testing.B, rdb *redis.Client, reg *registry.Registry, steps int, whole bool) (perStep, checkpointPerStep float64) {
	ctx := context.Background()
	st := store.New(rdb)
	sess := store.Session{ID: uuid.NewString(), OwnerID: "bench", CreatedAt: time.Now()}
	require.NoError(b, st.CreateSession(ctx, sess, 0))
	msg := events.Scope{SessionID: sess.ID}.Message(uuid.NewString(), events.SenderUser, "", "run the steps")
	_, rid, err := st.StartRun(ctx, "bench", msg, uuid.NewString())
	require.NoError(b, err)
	lease := store.Lease{SessionID: sess.ID, RunID: rid, Token: "bench"}
	ok, _, err := st.AcquireLease(ctx, lease, time.Minute)
	require.NoError(b, err)
	require.True(b, ok)

	engine := &workflow.Engine{Registry: reg, Provider: &stepper{steps: steps}, Tools: bigOutputs{},
		Limits:  workflow.Limits{MaxSteps: 10, MemberSteps: steps + 10, MaxToolCalls: 10 * steps, MaxTokens: 1 << 40},
		Context: workflow.Context{KeepToolOutputs: 6}}
	rt := New(st, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	r := rt.newRun(lease, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.record, err = st.GetRun(ctx, sess.ID, rid)
	require.NoError(b, err)

	var host workflow.Host
	var cpBytes func() int
	if whole {
		w := &wholeState{run: r}
		host, cpBytes = w, func() int { return w.bytes }
	} else {
		c := &counted{run: r}
		host, cpBytes = c, func() int { return c.bytes }
	}
	wrun := workflow.Run{SessionID: sess.ID, OwnerID: "bench", RunID: rid}
	state := engine.Begin(ctx, wrun, workflow.Start{Request: "run the steps"})
	before := netInput(b, rdb)
	require.NoError(b, host.Checkpoint(ctx, state, workflow.Usage{}))
	res, err := engine.Execute(ctx, host, wrun, state)
	require.NoError(b, err)
	require.Equal(b, workflow.Completed, res.Outcome)
	written := netInput(b, rdb) - before
	return float64(written) / float64(steps), float64(cpBytes()) / float64(steps)
}

func netInput(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	require.NoError(b, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_net_input_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(b, err)
			return n
		}
	}
	b.Fatal("no total_net_input_bytes in INFO stats")
	return 0
}
