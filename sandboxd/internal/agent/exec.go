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

// sink delivers a command's output as frames, under one lock, so the
// response is written by one goroutine at a time and never after the handler
// returned. Nothing is buffered here: a caller that wants the output whole
// collects the frames up to its own cap (sandboxd does, for a unary Exec).
type sink struct {
	mu       sync.Mutex
	detached bool
	emit     func(stderr bool, p []byte)
}

func (s *sink) write(stderr bool, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.detached {
		s.emit(stderr, p)
	}
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
	if req.Timeout <= 0 {
		// The default lives in sandboxd's configuration alone; a caller that sends none is a bug,
		// not a request for some number the agent would have to know.
		s.writeError(w, errf(agentapi.CodeInvalid, "timeout is required"))
		return
	}
	flusher, _ := w.(http.Flusher)
	out := &sink{emit: func(stderr bool, p []byte) {
		kind := agentapi.FrameStdout
		if stderr {
			kind = agentapi.FrameStderr
		}
		_ = agentapi.WriteFrame(w, kind, p)
		if flusher != nil {
			flusher.Flush()
		}
	}}
	start := func() {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		if flusher != nil {
			flusher.Flush()
		}
	}
	res, err := s.exec(r.Context(), req, out, start)
	if err != nil {
		s.writeError(w, err)
		return
	}
	b, _ := json.Marshal(res)
	out.mu.Lock()
	_ = agentapi.WriteFrame(w, agentapi.FrameExit, b)
	out.mu.Unlock()
}

// exec runs one command to completion, its timeout or ctx's end. started is
// called once the command is running (streamed responses send headers then).
func (s *Server) exec(ctx context.Context, req agentapi.ExecRequest, out *sink, started func()) (agentapi.ExecExit, error) {
	dir, err := s.cwdDir(req.Cwd)
	if err != nil {
		return agentapi.ExecExit{}, err
	}
	env, err := s.environ(req.Env)
	if err != nil {
		return agentapi.ExecExit{}, errf(agentapi.CodeInvalid, "%v", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return agentapi.ExecExit{}, err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return agentapi.ExecExit{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return agentapi.ExecExit{}, err
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
		return agentapi.ExecExit{}, errf(agentapi.CodeInternal, "start: %v", err)
	}
	s.trackGroup(pid)
	started()
	outDone, errDone := make(chan struct{}), make(chan struct{})
	go pump(outR, out, false, outDone)
	go pump(errR, out, true, errDone)

	timer := time.NewTimer(req.Timeout)
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
	res := agentapi.ExecExit{
		ExitCode:   exitCode(ws),
		TimedOut:   timedOut,
		DurationMS: float64(time.Since(begin).Microseconds()) / 1000,
	}
	if ctx.Err() != nil && !timedOut {
		return res, ctx.Err()
	}
	return res, nil
}
