package tools

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/browser"
	"github.com/mgx-ai/mgx/agentd/internal/store"
	"github.com/mgx-ai/mgx/agentd/internal/web"
	"github.com/mgx-ai/mgx/pkg/authn"
)

// maxOutput bounds what any tool result gives back to the model; each tool keeps well under it on its
// own terms (a page of lines, a head and tail of output), so this cut is a last resort.
const maxOutput = 24 << 10

// Result is a tool call's observation for the model.
type Result struct {
	Output  string
	IsError bool
	// Same, when set, stands for Output when the workflow judges whether a call keeps getting the same
	// result: the output without what differs between two runs although nothing else did — how long a
	// command took changes with the machine's load, and would hide a model polling in a loop.
	Same string
	// Paths are workspace paths the call changed and has not announced yet (file_change events).
	Paths []string
	// Artifacts are files the call stored for the user to see (artifact events).
	Artifacts []store.Artifact
	// Checkpoint is the snapshot of the workspace taken after the call changed files (a checkpoint
	// event), nil when it changed nothing or nothing new was snapshotted.
	Checkpoint *sandboxdv1.Checkpoint
}

// Progress receives what a call shows the user while it runs. Its methods may be called from more
// than one goroutine (output and changes arrive independently).
type Progress interface {
	// Output streams a piece of a command's output; stream is "stdout" or "stderr".
	Output(stream, text string)
	// Changed announces workspace paths that changed while the call runs.
	Changed(paths []string)
}

// Call is one tool call.
type Call struct {
	SessionID string
	OwnerID   string
	RunID     string
	// Agent is the member calling; ID is the model's call id.
	Agent string
	ID    string
	Tool  string
	// Args are the arguments as the model wrote them (JSON); Decoded is what Spec.Decode made of
	// them, decoded here when nil.
	Args    string
	Decoded any
	// WritePrefix confines file writes and edits (doc-writing roles).
	WritePrefix string
	// Progress, when set, receives live output and changes.
	Progress Progress

	watch *watcher
}

func (c *Call) output(stream, text string) {
	if c.Progress != nil && text != "" {
		c.Progress.Output(stream, text)
	}
}

func (c *Call) changed(paths []string) {
	if c.Progress != nil && len(paths) > 0 {
		c.Progress.Changed(paths)
	}
}

// Artifacts stores what tools produce for the user.
type Artifacts interface {
	SaveArtifact(ctx context.Context, a store.Artifact, data []byte) (store.Artifact, error)
}

// Options are the engines and settings of the tools that do not run in the sandbox. A nil engine
// leaves its tools unavailable, for the reason given.
type Options struct {
	Browser *browser.Browser
	// PreviewURL is sandboxd's preview listener as agentd reaches it (SANDBOXD_PREVIEW_URL):
	// preview_check loads pages through it, never through a container's address.
	PreviewURL string
	Searcher   *web.Searcher
	Fetcher    *web.Fetcher
	Artifacts  Artifacts
	// Unavailable names tools left out, with why (an engine that did not start).
	Unavailable map[string]string
	Logger      *slog.Logger
}

// Executor runs tools: sandbox tools through sandboxd's gRPC API as the session's owner, the browser
// and web tools in agentd.
type Executor struct {
	sandboxes sandboxdv1.SandboxServiceClient
	files     sandboxdv1.FileServiceClient
	procs     sandboxdv1.ProcessServiceClient
	ws        sandboxdv1.WorkspaceServiceClient
	opts      Options
	cursors   *cursorCache
}

// NewExecutor returns an executor over a connection to sandboxd.
func NewExecutor(cc grpc.ClientConnInterface, opts Options) *Executor {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Unavailable == nil {
		opts.Unavailable = map[string]string{}
	}
	missing := func(name, why string) {
		if _, ok := opts.Unavailable[name]; !ok {
			opts.Unavailable[name] = why
		}
	}
	if opts.Browser == nil {
		missing(PreviewCheck, "no headless browser")
	}
	if opts.Searcher == nil {
		missing(WebSearch, "no search provider is configured")
	}
	if opts.Fetcher == nil {
		missing(FetchURL, "no fetcher")
	}
	if opts.Artifacts == nil {
		missing(PreviewCheck, "no artifact store")
	}
	return &Executor{
		sandboxes: sandboxdv1.NewSandboxServiceClient(cc),
		files:     sandboxdv1.NewFileServiceClient(cc),
		procs:     sandboxdv1.NewProcessServiceClient(cc),
		ws:        sandboxdv1.NewWorkspaceServiceClient(cc),
		opts:      opts,
		cursors:   newCursorCache(4096),
	}
}

// Unavailable returns the tools that cannot run here, with why; agentd leaves them out of every
// agent's tool list.
func (x *Executor) Unavailable() map[string]string {
	out := make(map[string]string, len(x.opts.Unavailable))
	for k, v := range x.opts.Unavailable {
		out[k] = v
	}
	return out
}

// UnavailableNames lists Unavailable's tools, sorted.
func (x *Executor) UnavailableNames() []string {
	out := make([]string, 0, len(x.opts.Unavailable))
	for k := range x.opts.Unavailable {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fail(format string, a ...any) Result {
	return Result{Output: fmt.Sprintf(format, a...), IsError: true}
}

// Execute runs the call. Problems of the call itself (bad arguments, a failing command, sandboxd
// refusing) are observations with IsError; only the context's end is returned as an error, so a
// cancelled run stops instead of telling the model about it.
func (x *Executor) Execute(ctx context.Context, c Call) (Result, error) {
	spec, ok := Lookup(c.Tool)
	if !ok || spec.Control || spec.run == nil {
		return fail("unknown tool %q", c.Tool), nil
	}
	if why, off := x.opts.Unavailable[c.Tool]; off {
		return fail("%s is not available here (%s).", c.Tool, why), nil
	}
	if c.Decoded == nil {
		args, err := spec.Decode(c.Args)
		if err != nil {
			return fail("%v", err), nil
		}
		c.Decoded = args
	}
	ctx = authn.WithUser(ctx, c.OwnerID)
	var watch *watcher
	if spec.Watch {
		watch = x.watch(ctx, &c)
	}
	res, err := spec.run(ctx, x, &c, c.Decoded)
	changed := len(res.Paths) > 0
	if watch != nil {
		// Every path the call changed, including those made by what it ran, minus the ones already
		// announced while it ran.
		res.Paths = watch.finish(ctx, res.Paths)
		changed = changed || watch.changedAny()
	}
	if changed && ctx.Err() == nil {
		// A failed call may have changed files too: the step is undoable either way.
		res.Checkpoint = x.checkpoint(ctx, &c)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{Output: fmt.Sprintf("%s failed: %s", c.Tool, describe(err)), IsError: true, Paths: res.Paths}, nil
	}
	if len(res.Output) > maxOutput {
		res.Output = headTail(res.Output, maxOutput/4, maxOutput*3/4)
	}
	if res.Output == "" {
		res.Output = "(no output)"
	}
	return res, nil
}

// checkpointTimeout bounds the snapshot after a step: a large workspace must not hold up the run.
const checkpointTimeout = 30 * time.Second

// checkpoint snapshots the session's workspace after a step that changed files, so the user can
// see, diff and undo what the step did. A failure is logged, never the step's: the work is done.
func (x *Executor) checkpoint(ctx context.Context, c *Call) *sandboxdv1.Checkpoint {
	cctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	res, err := x.ws.CreateCheckpoint(cctx, &sandboxdv1.CreateCheckpointRequest{SessionId: c.SessionID,
		Agent: truncateRunes(c.Agent, 63), RunId: c.RunID, Step: truncateRunes(c.ID, 127), Message: c.Tool})
	if err != nil {
		x.opts.Logger.WarnContext(ctx, "checkpoint after a step failed", "session", c.SessionID, "tool", c.Tool, "err", err)
		return nil
	}
	if !res.GetCreated() {
		return nil
	}
	return res.GetCheckpoint()
}

// describe is the model-facing text of a failed sandbox call.
func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable:
			return "the sandbox service is unavailable"
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.DeadlineExceeded,
			codes.ResourceExhausted, codes.PermissionDenied, codes.OutOfRange:
			return st.Message()
		}
		return "the sandbox failed (" + st.Code().String() + ")"
	}
	return err.Error()
}

// cursorCache remembers, per session, the change journal's cursor after the last watched call, so
// the next one also reports what changed in between (a dev server writing files). Bounded: the
// oldest sessions are forgotten, which only means their next call starts from a fresh cursor.
type cursorCache struct {
	mu    sync.Mutex
	max   int
	order []string
	m     map[string]string
}

func newCursorCache(max int) *cursorCache { return &cursorCache{max: max, m: map[string]string{}} }

func (c *cursorCache) get(sid string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[sid]
}

func (c *cursorCache) set(sid, cursor string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sid]; !ok {
		c.order = append(c.order, sid)
		if len(c.order) > c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.m[sid] = cursor
}
