package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
)

// Bounds of process tools.
const (
	startSettle      = 2 * time.Second // how long process_start watches a new process before answering
	stopGrace        = 5 * time.Second // TERM, then KILL
	logsDefaultLines = 60
	logsMaxLines     = 500
	logsHead         = 2 << 10
	logsTail         = 12 << 10
	previewWait      = 15 * time.Second
)

const namePattern = `"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"`

type processStartArgs struct {
	Name    string            `json:"name"`
	Command string            `json:"command"`
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env"`
}

type processNameArgs struct {
	Name string `json:"name"`
}

type processLogsArgs struct {
	Name  string `json:"name"`
	Tail  int    `json:"tail"`
	Since *int64 `json:"since"`
}

type noArgs struct{}

type previewURLArgs struct {
	Port int32 `json:"port"`
}

var processSpecs = []*Spec{
	define(Spec{Name: ProcessStart, SideEffects: true, Watch: true,
		Description: "Start a long-running background process (a dev server, a watcher) under a name; its output goes to a log. " +
			"The answer says, after a moment, whether it is still running, which ports it listens on and its first output. " +
			"A name already running must be stopped first (process_stop), or see process_list.",
		Schema: `{"type":"object","properties":{"name":{"type":"string","pattern":` + namePattern + `},"command":{"type":"string","minLength":1,"maxLength":65536},"cwd":{"type":"string","maxLength":4096},"env":{"type":"object","additionalProperties":{"type":"string"},"maxProperties":64}},"required":["name","command"],"additionalProperties":false}`},
		processStart),
	define(Spec{Name: ProcessList,
		Description: "List the sandbox's background processes: name, command, state (running, or exited with its code), the ports " +
			"each listens on with their preview URL, and other listening ports.",
		Schema: `{"type":"object","properties":{},"additionalProperties":false}`},
		processList),
	define(Spec{Name: ProcessLogs,
		Description: "Read a background process's output. Without since: its last `tail` lines (default 60, at most 500). With " +
			"since (the cursor the previous answer gave): only what it wrote after that, so polling a compiling server shows " +
			"progress instead of the same lines again.",
		Schema: `{"type":"object","properties":{"name":{"type":"string","pattern":` + namePattern + `},"tail":{"type":"integer","minimum":1,"maximum":500},"since":{"type":"integer","minimum":0}},"required":["name"],"additionalProperties":false}`},
		processLogs),
	define(Spec{Name: ProcessStop, SideEffects: true, Watch: true,
		Description: "Stop a background process (TERM to its whole process group, KILL after 5 s).",
		Schema:      `{"type":"object","properties":{"name":{"type":"string","pattern":` + namePattern + `}},"required":["name"],"additionalProperties":false}`},
		processStop),
	define(Spec{Name: PreviewURL,
		Description: "Get the live preview URL the user opens for a port a server listens on in the sandbox (waits up to 15 s for " +
			"the port to open). Without a port: every listening port's URL.",
		Schema: `{"type":"object","properties":{"port":{"type":"integer","minimum":1,"maximum":65535}},"additionalProperties":false}`},
		previewURL),
}

// findProcess returns the named process, or nil.
func (x *Executor) findProcess(ctx context.Context, sid, name string) (*sandboxdv1.Process, error) {
	r, err := x.procs.ListProcesses(ctx, &sandboxdv1.ListProcessesRequest{SessionId: sid})
	if err != nil {
		return nil, err
	}
	for _, p := range r.GetProcesses() {
		if p.GetName() == name {
			return p, nil
		}
	}
	return nil, nil
}

// previews maps listening ports to their preview URLs (best effort).
func (x *Executor) previews(ctx context.Context, sid string) map[int32]string {
	r, err := x.sandboxes.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
	out := map[int32]string{}
	if err != nil {
		return out
	}
	for _, p := range r.GetPreviews() {
		out[p.GetContainerPort()] = p.GetUrl()
	}
	return out
}

// readLog reads a process log from offset (or tail bytes before its end) into c, and returns where
// the text read starts and ends in the log.
func (x *Executor) readLog(ctx context.Context, sid, name string, offset, tail int64, c *capture) (*capture, int64, int64, error) {
	st, err := x.procs.GetProcessLogs(ctx, &sandboxdv1.GetProcessLogsRequest{SessionId: sid, Name: name, Offset: offset, TailBytes: tail})
	if err != nil {
		return nil, 0, 0, err
	}
	start, end := int64(-1), offset
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, 0, err
		}
		if start < 0 {
			start = m.GetOffset()
		}
		c.Write(m.GetData())
		end = m.GetNextOffset()
	}
	if start < 0 {
		start = end
	}
	return c, start, end, nil
}

func describeProcess(p *sandboxdv1.Process, urls map[int32]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", p.GetName())
	if p.GetState() == "running" {
		fmt.Fprintf(&b, "running (pid %d", p.GetPid())
		if t := p.GetStartedAt(); t != nil {
			fmt.Fprintf(&b, ", up %s", time.Since(t.AsTime()).Round(time.Second))
		}
		b.WriteString(")")
	} else {
		fmt.Fprintf(&b, "exited with code %d", p.GetExitCode())
		if s, e := p.GetStartedAt(), p.GetExitedAt(); s != nil && e != nil {
			fmt.Fprintf(&b, " after %s", e.AsTime().Sub(s.AsTime()).Round(100*time.Millisecond))
		}
	}
	if ports := p.GetPorts(); len(ports) > 0 {
		var ps []string
		for _, port := range ports {
			if u := urls[port]; u != "" {
				ps = append(ps, fmt.Sprintf("%d (preview %s)", port, u))
			} else {
				ps = append(ps, fmt.Sprint(port))
			}
		}
		fmt.Fprintf(&b, ", listening on %s", strings.Join(ps, ", "))
	}
	fmt.Fprintf(&b, " — `%s`", truncateRunes(p.GetCommand(), 200))
	if p.GetCwd() != "" && p.GetCwd() != "." {
		fmt.Fprintf(&b, " in %s", p.GetCwd())
	}
	return b.String()
}

func processStart(ctx context.Context, x *Executor, c *Call, a *processStartArgs) (Result, error) {
	r, err := x.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: c.SessionID, Name: a.Name, Command: a.Command, Cwd: a.Cwd, Env: a.Env})
	if status.Code(err) == codes.AlreadyExists {
		return fail("a process named %q is already running. Use process_list to see it, process_logs to read it, or process_stop to stop it before starting it again.", a.Name), nil
	}
	if err != nil {
		return Result{}, err
	}
	// Watch it for a moment: a server that crashes at once, or the port it opens, is what the model
	// needs to know next.
	p := r.GetProcess()
	deadline := time.Now().Add(startSettle)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		cur, err := x.findProcess(ctx, c.SessionID, a.Name)
		if err != nil || cur == nil {
			continue
		}
		p = cur
		if p.GetState() != "running" || len(p.GetPorts()) > 0 {
			break
		}
	}
	logs, _, end, err := x.readLog(ctx, c.SessionID, a.Name, 0, logsTail, newCapture(logsHead, logsTail))
	var out strings.Builder
	fmt.Fprintf(&out, "started %s\n", describeProcess(p, x.previews(ctx, c.SessionID)))
	if err == nil {
		if logs.total == 0 {
			out.WriteString("No output yet.\n")
		} else {
			fmt.Fprintf(&out, "Output so far:\n%s\n", strings.TrimRight(logs.String(), "\n"))
		}
		fmt.Fprintf(&out, "Read newer output with process_logs name=%q since=%d.\n", a.Name, end)
	}
	if p.GetState() != "running" {
		return Result{Output: out.String() + "The process has already exited.", IsError: p.GetExitCode() != 0}, nil
	}
	return Result{Output: out.String()}, nil
}

func processList(ctx context.Context, x *Executor, c *Call, _ *noArgs) (Result, error) {
	r, err := x.procs.ListProcesses(ctx, &sandboxdv1.ListProcessesRequest{SessionId: c.SessionID})
	if err != nil {
		return Result{}, err
	}
	urls := x.previews(ctx, c.SessionID)
	var out strings.Builder
	owned := map[int32]bool{}
	ps := r.GetProcesses()
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].GetState() == "running" && ps[j].GetState() != "running" })
	for _, p := range ps {
		out.WriteString(describeProcess(p, urls) + "\n")
		for _, port := range p.GetPorts() {
			owned[port] = true
		}
	}
	var others []string
	for port, u := range urls {
		if !owned[port] {
			others = append(others, fmt.Sprintf("%d (preview %s)", port, u))
		}
	}
	sort.Strings(others)
	if len(others) > 0 {
		fmt.Fprintf(&out, "Other listening ports: %s\n", strings.Join(others, ", "))
	}
	if out.Len() == 0 {
		return Result{Output: "No background processes and no listening ports. Start a server with process_start."}, nil
	}
	return Result{Output: out.String()}, nil
}

func processLogs(ctx context.Context, x *Executor, c *Call, a *processLogsArgs) (Result, error) {
	p, err := x.findProcess(ctx, c.SessionID, a.Name)
	if err != nil {
		return Result{}, err
	}
	if p == nil {
		return fail("no process named %q; process_list shows the ones there are.", a.Name), nil
	}
	state := describeProcess(p, x.previews(ctx, c.SessionID))
	if a.Since != nil {
		logs, start, end, err := x.readLog(ctx, c.SessionID, a.Name, *a.Since, 0, newCapture(logsHead, logsTail))
		if err != nil {
			return Result{}, err
		}
		var out strings.Builder
		out.WriteString(state + "\n")
		if start < *a.Since {
			out.WriteString("The log started over (the process was started again); showing it from the beginning.\n")
		}
		if logs.total == 0 {
			fmt.Fprintf(&out, "No new output since %d.\n", *a.Since)
		} else {
			fmt.Fprintf(&out, "Output since %d (%s):\n%s\n", start, size(logs.total), strings.TrimRight(logs.String(), "\n"))
		}
		fmt.Fprintf(&out, "Next: process_logs name=%q since=%d.", a.Name, end)
		return Result{Output: out.String()}, nil
	}
	lines := a.Tail
	if lines <= 0 {
		lines = logsDefaultLines
	}
	lines = min(lines, logsMaxLines)
	// The whole tail is kept (it is bounded by what is asked), then cut to the lines wanted and to
	// what a result may hold, dropping the oldest lines first.
	window := int64(min(lines*200, 64<<10))
	logs, start, end, err := x.readLog(ctx, c.SessionID, a.Name, 0, window, newCapture(int(window), 0))
	if err != nil {
		return Result{}, err
	}
	text := strings.TrimRight(logs.String(), "\n")
	all := strings.Split(text, "\n")
	if start > 0 && len(all) > 1 {
		all = all[1:] // the first line may have been cut by the tail
	}
	shown := all
	if len(shown) > lines {
		shown = shown[len(shown)-lines:]
	}
	for len(shown) > 1 && len(strings.Join(shown, "\n")) > logsTail+logsHead {
		shown = shown[1:]
	}
	var out strings.Builder
	out.WriteString(state + "\n")
	if text == "" {
		out.WriteString("No output yet.\n")
	} else {
		fmt.Fprintf(&out, "Last %s of its output:\n%s\n", plural(len(shown), "line"), strings.Join(shown, "\n"))
	}
	fmt.Fprintf(&out, "Next: process_logs name=%q since=%d shows only newer output.", a.Name, end)
	return Result{Output: out.String()}, nil
}

func processStop(ctx context.Context, x *Executor, c *Call, a *processNameArgs) (Result, error) {
	p, err := x.findProcess(ctx, c.SessionID, a.Name)
	if err != nil {
		return Result{}, err
	}
	if p == nil {
		return fail("no process named %q; process_list shows the ones there are.", a.Name), nil
	}
	if p.GetState() != "running" {
		return Result{Output: describeProcess(p, nil) + " (it was not running)."}, nil
	}
	for _, signal := range []string{"TERM", "KILL"} {
		if _, err := x.procs.SignalProcess(ctx, &sandboxdv1.SignalProcessRequest{SessionId: c.SessionID, Name: a.Name, Signal: signal}); err != nil {
			return Result{}, err
		}
		deadline := time.Now().Add(stopGrace)
		for time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if p, err = x.findProcess(ctx, c.SessionID, a.Name); err == nil && p != nil && p.GetState() != "running" {
				return Result{Output: fmt.Sprintf("stopped %s (SIG%s): %s", a.Name, signal, describeProcess(p, nil))}, nil
			}
		}
	}
	return fail("%s did not exit after SIGTERM and SIGKILL", a.Name), nil
}

func previewURL(ctx context.Context, x *Executor, c *Call, a *previewURLArgs) (Result, error) {
	urls, err := x.waitPreview(ctx, c.SessionID, a.Port, previewWait)
	if err != nil {
		return Result{}, err
	}
	if len(urls) == 0 {
		if a.Port == 0 {
			return fail("nothing listens on any port in the sandbox yet: start a server with process_start and check process_logs."), nil
		}
		return fail("nothing listens on port %d in the sandbox (waited %s): is the server started (process_list) and bound to that port? Check process_logs.", a.Port, previewWait), nil
	}
	var lines []string
	for _, port := range sortedPorts(urls) {
		lines = append(lines, fmt.Sprintf("port %d: %s", port, urls[port]))
	}
	return Result{Output: strings.Join(lines, "\n")}, nil
}

// waitPreview polls the preview list until port (any, when 0) listens or the wait ends: a server
// just started may take a moment to listen.
func (x *Executor) waitPreview(ctx context.Context, sid string, port int32, wait time.Duration) (map[int32]string, error) {
	deadline := time.Now().Add(wait)
	for {
		r, err := x.sandboxes.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
		if err != nil {
			return nil, err
		}
		urls := map[int32]string{}
		for _, p := range r.GetPreviews() {
			if port == 0 || p.GetContainerPort() == port {
				urls[p.GetContainerPort()] = p.GetUrl()
			}
		}
		if len(urls) > 0 || time.Now().After(deadline) {
			return urls, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func sortedPorts(m map[int32]string) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
