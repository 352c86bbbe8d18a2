// Package agent is the sandbox-agent: the small static server that runs as
// PID 1 inside every sandbox (or as a host process for the local driver) and
// serves sandboxd over a unix socket — commands, background processes, files
// confined to the workspace, listening ports and a TCP tunnel for previews.
// The wire contract is package agentapi.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/checkpoint"
	"github.com/mgx-ai/mgx/sandboxd/internal/proctree"
)

// Options configure an agent.
type Options struct {
	// Socket is the unix socket path to serve on.
	Socket string
	// Workspace is the directory every file path and cwd is confined to.
	Workspace string
	// StateDir keeps background process logs.
	StateDir string
	// User is the account commands run as when the agent runs as root and
	// the account exists; otherwise commands run as the agent's own user.
	User string
	// OwnedPortsOnly reports only ports held by the agent's own descendants.
	// The local driver needs it: on the host, /proc/net/tcp lists every
	// port of the machine, not just the sandbox's.
	OwnedPortsOnly bool
	// LinkScope lists the directories that hold the sandbox's own files (the local driver: its workspace,
	// home and temp dir). The files API reads or writes a file with more than one hard link only when all its
	// links lie inside them; see linkGuard. The workspace always counts. Empty means the workspace alone on the
	// host, and no check at all when the agent is PID 1: a container's processes cannot link to anything
	// outside the container.
	LinkScope []string
	// MetaDir is the workspace's own state beside it (the meta volume): its marker and checkpoint
	// history. Empty for a sandbox without workspace volumes.
	MetaDir string
	// MaxReadBytes caps the size of a file read. 0 means 8 MiB, which stays
	// under the 16 MiB gRPC message limit even base64-encoded.
	MaxReadBytes int64
	// Logger receives the agent's own diagnostics.
	Logger *slog.Logger
}

// Server is a running agent.
type Server struct {
	opts     Options
	root     *os.Root
	children *children
	shell    []string
	links    *linkGuard
	cred     *syscall.Credential
	home     string
	userName string
	baseEnv  []string
	active   atomic.Int32
	changes  *changeTracker

	metaMu sync.Mutex
	// history is the workspace's checkpoint history, opened on first use (under metaMu).
	history *checkpoint.Store

	procMu sync.Mutex
	procs  map[string]*process
	// groups are the process groups of every exec, killed on shutdown so
	// that background children (`cmd &`) never outlive a host-mode agent.
	groups map[int]bool
}

// New prepares an agent: it opens the workspace and resolves the shell and
// the user commands run as.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.MaxReadBytes <= 0 {
		opts.MaxReadBytes = 8 << 20
	}
	if err := os.MkdirAll(opts.Workspace, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	root, err := os.OpenRoot(opts.Workspace)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(os.TempDir(), "mgx-agent")
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	var links *linkGuard
	if len(opts.LinkScope) > 0 || os.Getpid() != 1 {
		// The workspace is always the sandbox's own, whatever else the scope names.
		links = newLinkGuard(append([]string{opts.Workspace}, opts.LinkScope...))
	}
	s := &Server{opts: opts, root: root, links: links, children: newChildren(), procs: make(map[string]*process), groups: make(map[int]bool)}
	s.shell = []string{"/bin/sh", "-c"}
	if _, err := os.Stat("/bin/bash"); err == nil {
		// A login shell so that the image's profile (nvm, PATH additions)
		// applies, as it would in a terminal.
		s.shell = []string{"/bin/bash", "-lc"}
	}
	// HOME: what the container (or host) gave us — Docker sets it from the
	// image's passwd entry — then the passwd entry, then the workspace.
	s.home = os.Getenv("HOME")
	if u, err := user.Current(); err == nil {
		s.userName = u.Username
		if s.home == "" || s.home == "/" {
			s.home = u.HomeDir
		}
	}
	if s.home == "" || s.home == "/" {
		s.home = opts.Workspace
	}
	if opts.User != "" && os.Getuid() == 0 {
		if u, err := user.Lookup(opts.User); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if uid != 0 {
				s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
				s.userName = u.Username
				if u.HomeDir != "" {
					s.home = u.HomeDir
				}
			}
		}
	}
	s.baseEnv = baseEnv(s.home, s.userName)
	s.startChanges()
	return s, nil
}

func baseEnv(home, userName string) []string {
	env := []string{}
	hasPath := false
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MGX_AGENT_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") {
			continue
		}
		if strings.HasPrefix(kv, "PATH=") {
			hasPath = true
		}
		env = append(env, kv)
	}
	if !hasPath {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	env = append(env, "HOME="+home)
	if userName != "" {
		env = append(env, "USER="+userName)
	}
	return env
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// environ returns the environment of a command: the agent's base plus the
// request's variables, whose names were validated.
func (s *Server) environ(extra map[string]string) ([]string, error) {
	env := append([]string(nil), s.baseEnv...)
	for k, v := range extra {
		if !envName.MatchString(k) || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("invalid environment variable %q", k)
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// Serve listens on the socket and serves until ctx is done, then stops every
// process it started.
func (s *Server) Serve(ctx context.Context) error {
	_ = os.Remove(s.opts.Socket)
	ln, err := net.Listen("unix", s.opts.Socket)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.Socket, err)
	}
	// sandboxd may run as another user than the sandbox; the directory the
	// socket lives in is what restricts access.
	_ = os.Chmod(s.opts.Socket, 0o666)
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on an existing listener.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	reapCtx, stopReap := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReap()
	go s.children.run(reapCtx)

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.stopAll()
	if s.changes != nil {
		s.changes.Close()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return nil
}

// Handler returns the agent's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathHealth, s.handleHealth)
	mux.HandleFunc("POST "+agentapi.PathExec, s.handleExec)
	mux.HandleFunc("POST "+agentapi.PathProcesses, s.handleStartProcess)
	mux.HandleFunc("GET "+agentapi.PathProcesses, s.handleListProcesses)
	mux.HandleFunc("GET "+agentapi.PathProcesses+"/{name}/logs", s.handleProcessLogs)
	mux.HandleFunc("POST "+agentapi.PathProcesses+"/{name}/signal", s.handleSignalProcess)
	mux.HandleFunc("GET "+agentapi.PathPorts, s.handlePorts)
	mux.HandleFunc("GET "+agentapi.PathTree, s.handleTree)
	mux.HandleFunc("GET "+agentapi.PathFile, s.handleReadFile)
	mux.HandleFunc("PUT "+agentapi.PathFile, s.handleWriteFile)
	mux.HandleFunc("DELETE "+agentapi.PathFile, s.handleDeleteFile)
	mux.HandleFunc("GET "+agentapi.PathTunnel, s.handleTunnel)
	mux.HandleFunc("GET "+agentapi.PathChanges, s.handleChanges)
	mux.HandleFunc("POST "+agentapi.PathSearch, s.handleSearch)
	mux.HandleFunc("GET "+agentapi.PathMarker, s.handleGetMarker)
	mux.HandleFunc("PUT "+agentapi.PathMarker, s.handlePutMarker)
	mux.HandleFunc("POST "+agentapi.PathSync, s.handleSync)
	mux.HandleFunc("GET "+agentapi.PathUsage, s.handleUsage)
	mux.HandleFunc("GET "+agentapi.PathCheckpoints, s.handleListCheckpoints)
	mux.HandleFunc("POST "+agentapi.PathCheckpoints, s.handleCreateCheckpoint)
	mux.HandleFunc("POST "+agentapi.PathCheckpointDiff, s.handleDiffCheckpoint)
	mux.HandleFunc("POST "+agentapi.PathCheckpointRestore, s.handleRestoreCheckpoint)
	return mux
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, agentapi.Health{
		PID: os.Getpid(), Shell: s.shell[0], User: s.userName,
		Workspace: s.opts.Workspace, ActiveExecs: int(s.active.Load()),
	})
}

// sweepBudget bounds the search for every descendant on shutdown.
const sweepBudget = 5 * time.Second

// stopAll ends every process of the sandbox on shutdown (host mode: in a container the kernel ends them all
// with PID 1). Killing the process groups of the commands it started is not enough: `setsid cmd &`, a
// double-forked daemon or `nohup` leave their group and session. They cannot leave the agent's ancestry: the
// agent is a child subreaper (sandbox-agent's main), so every orphan below it is re-parented to it and stays
// its descendant, and the sweep ends them all, freezing them first so a fork loop cannot outrun it.
func (s *Server) stopAll() {
	s.procMu.Lock()
	for _, p := range s.procs {
		if p.running() {
			killGroup(p.pid, syscall.SIGKILL)
		}
	}
	for pgid := range s.groups {
		killGroup(pgid, syscall.SIGKILL)
	}
	s.procMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), sweepBudget)
	defer cancel()
	if err := proctree.End(ctx, proctree.Below(os.Getpid())); err != nil {
		s.opts.Logger.Error("processes survive the agent", "err", err)
	}
}

// trackGroup remembers an exec's process group; groups whose leader is gone
// and that have no members left are pruned lazily.
func (s *Server) trackGroup(pgid int) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	for g := range s.groups {
		if syscall.Kill(-g, 0) != nil {
			delete(s.groups, g)
		}
	}
	s.groups[pgid] = true
}

// apiError is an error with an agentapi code.
type apiError struct {
	code string
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errf(code, format string, args ...any) error {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.opts.Logger.Error("agent request failed", "err", err)
		ae = &apiError{code: agentapi.CodeInternal, msg: err.Error()}
	}
	status := http.StatusBadRequest
	switch ae.code {
	case agentapi.CodeNotFound, agentapi.CodeNoCheckpoint:
		status = http.StatusNotFound
	case agentapi.CodeExists:
		status = http.StatusConflict
	case agentapi.CodeNoPort:
		status = http.StatusBadGateway
	case agentapi.CodeInternal:
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, agentapi.Error{Code: ae.code, Message: ae.msg})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	if err := dec.Decode(v); err != nil {
		return errf(agentapi.CodeInvalid, "bad request body: %v", err)
	}
	return nil
}

// cwdDir checks that the clean relative cwd is a directory inside the
// workspace (following symlinks only within it) and returns its host path.
func (s *Server) cwdDir(rel string) (string, error) {
	if rel == "" {
		rel = "."
	}
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errf(agentapi.CodeEscape, "%s: outside /workspace", shortPath(rel))
	}
	fi, err := s.root.Stat(rel)
	if err != nil {
		return "", fsError(err, rel)
	}
	if !fi.IsDir() {
		return "", errf(agentapi.CodeInvalid, "%s: not a directory", shortPath(rel))
	}
	return filepath.Join(s.opts.Workspace, rel), nil
}

// procAttr builds the fork attributes of a command: its own process group,
// the sandbox user, the given files.
func (s *Server) procAttr(dir string, env []string, files []uintptr) *syscall.ProcAttr {
	return &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: s.cred,
			// A command must not outlive an agent that dies unexpectedly
			// in the local driver (in a container the kernel kills every
			// process when PID 1 exits anyway).
			Pdeathsig: syscall.SIGKILL,
		},
	}
}

func (s *Server) argv(command string) []string {
	return append(append([]string(nil), s.shell...), command)
}
