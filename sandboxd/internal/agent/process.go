package agent

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

var processName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

var signals = map[string]syscall.Signal{
	"": syscall.SIGTERM, "TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT,
	"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

// process is a named background process. Its stdout and stderr go to a log
// file, never to a pipe, so nothing the agent does can block or kill it.
type process struct {
	mu      sync.Mutex
	info    agentapi.Process
	pid     int
	logPath string
	done    chan struct{}
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *process) snapshot() agentapi.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info
}

func (s *Server) handleStartProcess(w http.ResponseWriter, r *http.Request) {
	var req agentapi.StartProcessRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	p, err := s.startProcess(req)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p.snapshot())
}

func (s *Server) startProcess(req agentapi.StartProcessRequest) (*process, error) {
	if !processName.MatchString(req.Name) {
		return nil, errf(agentapi.CodeInvalid, "invalid process name %q", req.Name)
	}
	if req.Command == "" {
		return nil, errf(agentapi.CodeInvalid, "empty command")
	}
	dir, err := s.cwdDir(req.Cwd)
	if err != nil {
		return nil, err
	}
	env, err := s.environ(req.Env)
	if err != nil {
		return nil, errf(agentapi.CodeInvalid, "%v", err)
	}

	s.procMu.Lock()
	defer s.procMu.Unlock()
	if old, ok := s.procs[req.Name]; ok && old.running() {
		return nil, errf(agentapi.CodeExists, "process %q is already running (pid %d)", req.Name, old.pid)
	}
	logPath := filepath.Join(s.opts.StateDir, "logs", req.Name+".log")
	// A fresh file every start, never one found at the path: on the host, sandbox code can reach the state
	// directory and leave a FIFO there (open would block) or a symlink to a file it wants truncated.
	if err := os.Remove(logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if s.cred != nil {
		_ = logf.Chown(int(s.cred.Uid), int(s.cred.Gid))
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	argv := s.argv(req.Command)
	attr := s.procAttr(dir, env, []uintptr{devnull.Fd(), logf.Fd(), logf.Fd()})
	// A dev server must survive the agent's request goroutine and thread;
	// only the local driver's agent exit (handled by Remove) ends it.
	attr.Sys.Pdeathsig = 0
	pid, wait, err := s.children.start(argv[0], argv, attr)
	if err != nil {
		return nil, errf(agentapi.CodeInternal, "start: %v", err)
	}
	p := &process{
		pid:     pid,
		logPath: logPath,
		done:    make(chan struct{}),
		info: agentapi.Process{
			Name: req.Name, Command: req.Command, Cwd: req.Cwd, PID: pid,
			State: agentapi.StateRunning, StartedAt: time.Now().UTC(),
		},
	}
	s.procs[req.Name] = p
	go func() {
		ws := <-wait
		now := time.Now().UTC()
		p.mu.Lock()
		p.info.State = agentapi.StateExited
		p.info.ExitCode = exitCode(ws)
		p.info.ExitedAt = &now
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (s *Server) lookupProcess(name string) (*process, error) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	p, ok := s.procs[name]
	if !ok {
		return nil, errf(agentapi.CodeNotFound, "no process named %q", name)
	}
	return p, nil
}

func (s *Server) handleListProcesses(w http.ResponseWriter, _ *http.Request) {
	s.procMu.Lock()
	list := make([]agentapi.Process, 0, len(s.procs))
	for _, p := range s.procs {
		list = append(list, p.snapshot())
	}
	s.procMu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	attachPorts(list)
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleSignalProcess(w http.ResponseWriter, r *http.Request) {
	p, err := s.lookupProcess(r.PathValue("name"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	var req agentapi.SignalRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	sig, ok := signals[req.Signal]
	if !ok {
		s.writeError(w, errf(agentapi.CodeInvalid, "unknown signal %q", req.Signal))
		return
	}
	if p.running() {
		killGroup(p.pid, sig)
	}
	writeJSON(w, http.StatusOK, p.snapshot())
}

// handleProcessLogs streams a process's log from ?offset=; with ?follow=1 it
// keeps streaming until the process exited and the log is drained, or the
// caller goes away.
func (s *Server) handleProcessLogs(w http.ResponseWriter, r *http.Request) {
	p, err := s.lookupProcess(r.PathValue("name"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	offset, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if offset < 0 {
		offset = 0
	}
	follow := r.URL.Query().Get("follow") == "1"
	f, err := openLog(p.logPath)
	if err != nil {
		s.writeError(w, err)
		return
	}
	defer f.Close()
	// ?tail=N starts N bytes before the end (from an offset of 0 only): a caller that wants the last
	// lines of a long log need not read all of it.
	// An offset past the end belongs to an earlier run of the process (a restart starts a new log).
	if fi, err := f.Stat(); err == nil {
		if offset > fi.Size() {
			offset = 0
		}
		if tail, _ := strconv.ParseInt(r.URL.Query().Get("tail"), 10, 64); tail > 0 && offset == 0 && fi.Size() > tail {
			offset = fi.Size() - tail
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set(agentapi.HeaderLogOffset, strconv.FormatInt(offset, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			continue
		}
		if err != nil && err != io.EOF {
			return
		}
		if !follow {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-p.done:
			// One more pass drains what it wrote before exiting.
			follow = false
		case <-poll.C:
		}
	}
}

// openLog opens a process log for reading without blocking on, or following, whatever sandbox code may have
// put at its path since (the state directory is reachable on the host), and only if it is a regular file.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, errf(agentapi.CodeNotFound, "process log is missing or not a regular file")
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errf(agentapi.CodeNotFound, "process log is missing or not a regular file")
	}
	return f, nil
}
