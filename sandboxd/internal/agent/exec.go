package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// drainGrace bounds how long exec keeps reading output after the command's
// main process exited. Output it wrote is already in the pipe and arrives in
// microseconds; only a background child that inherited stdout (`npm run dev &`)
// keeps the pipe open, and waiting for its EOF would hang the call forever.
const drainGrace = 100 * time.Millisecond

// defaultOutputLimit applies when a request names no cap.
const defaultOutputLimit = 1 << 20

// sink receives a command's output under one lock so a streamed response is
// written by one goroutine at a time and never after the handler returned.
// Buffered output is capped at limit per stream.
type sink struct {
	mu        sync.Mutex
	limit     int
	out, errb []byte
	truncated bool
	detached  bool
	// stream, when set, receives output instead of the buffers.
	stream func(stderr bool, p []byte)
}

func (s *sink) write(stderr bool, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	if s.stream != nil {
		// A stream holds nothing in memory, so it is not capped: a long
		// build's log reaches the caller whole.
		s.stream(stderr, p)
		return
	}
	buf := &s.out
	if stderr {
		buf = &s.errb
	}
	room := s.limit - len(*buf)
	if room <= 0 {
		if len(p) > 0 {
			s.truncated = true
		}
		return
	}
	if len(p) > room {
		p, s.truncated = p[:room], true
	}
	*buf = append(*buf, p...)
}

// detach stops delivering output; later reads are discarded.
func (s *sink) detach() {
	s.mu.Lock()
	s.detached = true
	s.mu.Unlock()
}

// pump copies r into the sink until EOF, then closes r and signals done. A
// detached pump keeps draining so that a lingering background writer neither
// blocks on a full pipe nor dies of SIGPIPE.
func pump(r *os.File, s *sink, stderr bool, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.write(stderr, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	var req agentapi.ExecRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if req.Command == "" {
		s.writeError(w, errf(agentapi.CodeInvalid, "empty command"))
		return
	}
	if req.OutputLimit <= 0 {
		req.OutputLimit = defaultOutputLimit
	}
	out := &sink{limit: req.OutputLimit}
	if req.Stream {
		flusher, _ := w.(http.Flusher)
		out.stream = func(stderr bool, p []byte) {
			kind := agentapi.FrameStdout
			if stderr {
				kind = agentapi.FrameStderr
			}
			_ = agentapi.WriteFrame(w, kind, p)
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
	start := func() {
		if req.Stream {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
	}
	res, err := s.exec(r.Context(), req, out, start)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if req.Stream {
		out.mu.Lock()
		res.Truncated = out.truncated
		b, _ := json.Marshal(res)
		_ = agentapi.WriteFrame(w, agentapi.FrameExit, b)
		out.mu.Unlock()
		return
	}
	res.Stdout, res.Stderr, res.Truncated = out.out, out.errb, out.truncated
	writeJSON(w, http.StatusOK, res)
}

// exec runs one command to completion, its timeout or ctx's end. started is
// called once the command is running (streamed responses send headers then).
func (s *Server) exec(ctx context.Context, req agentapi.ExecRequest, out *sink, started func()) (agentapi.ExecResult, error) {
	dir, err := s.cwdDir(req.Cwd)
	if err != nil {
		return agentapi.ExecResult{}, err
	}
	env, err := s.environ(req.Env)
	if err != nil {
		return agentapi.ExecResult{}, errf(agentapi.CodeInvalid, "%v", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return agentapi.ExecResult{}, err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return agentapi.ExecResult{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return agentapi.ExecResult{}, err
	}

	s.active.Add(1)
	defer s.active.Add(-1)
	begin := time.Now()
	argv := s.argv(req.Command)
	pid, wait, err := s.children.start(argv[0], argv, s.procAttr(dir, env, []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()}))
	// Our copies of the write ends must go, or the pipes never reach EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return agentapi.ExecResult{}, errf(agentapi.CodeInternal, "start: %v", err)
	}
	s.trackGroup(pid)
	started()
	outDone, errDone := make(chan struct{}), make(chan struct{})
	go pump(outR, out, false, outDone)
	go pump(errR, out, true, errDone)

	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 300 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var ws syscall.WaitStatus
	timedOut := false
	select {
	case ws = <-wait:
	case <-timer.C:
		timedOut = true
		killGroup(pid, syscall.SIGKILL)
		ws = <-wait
	case <-ctx.Done():
		// The caller went away (its own deadline, a cancelled stream):
		// nobody will read the result, so nothing may keep running.
		killGroup(pid, syscall.SIGKILL)
		ws = <-wait
	}
	grace := time.NewTimer(drainGrace)
	defer grace.Stop()
	for _, done := range []chan struct{}{outDone, errDone} {
		select {
		case <-done:
		case <-grace.C:
			// A background child still holds the pipe; stop waiting.
			grace.Reset(0)
		}
	}
	out.detach()
	res := agentapi.ExecResult{
		ExitCode:   exitCode(ws),
		TimedOut:   timedOut,
		DurationMS: float64(time.Since(begin).Microseconds()) / 1000,
	}
	if ctx.Err() != nil && !timedOut {
		return res, ctx.Err()
	}
	return res, nil
}
