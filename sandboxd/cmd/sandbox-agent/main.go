// Command sandbox-agent is the in-sandbox server of sandboxd: PID 1 of every
// sandbox container (or a host process for the local driver). Build it
// static: CGO_ENABLED=0 go build ./cmd/sandbox-agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mgx-ai/mgx/sandboxd/internal/agent"
)

func main() { os.Exit(run()) }

func run() int {
	var opts agent.Options
	flag.StringVar(&opts.Socket, "listen", "/.mgx/run/agent.sock", "unix socket to serve on")
	flag.StringVar(&opts.Workspace, "workspace", "/workspace", "directory files and commands are confined to")
	flag.StringVar(&opts.StateDir, "state-dir", "", "directory for process logs (default $TMPDIR/mgx-agent)")
	flag.StringVar(&opts.MetaDir, "meta-dir", "", "the workspace's own state beside it (marker, checkpoint history): its meta volume")
	flag.StringVar(&opts.User, "user", "", "run commands as this user when the agent runs as root")
	flag.BoolVar(&opts.OwnedPortsOnly, "owned-ports", false, "report only ports of the agent's own descendants (host mode)")
	var linkScope, listenTCP, secretFile, install string
	flag.StringVar(&listenTCP, "listen-tcp", "", "serve on this TCP address instead of the unix socket (a Kubernetes pod); needs -secret-file")
	flag.StringVar(&secretFile, "secret-file", "", "file holding the per-sandbox secret every TCP connection must prove (agentapi.ServerHandshake)")
	flag.StringVar(&install, "install", "", "copy this binary to the given path and exit (a pod's init container stages the agent this way)")
	flag.StringVar(&linkScope, "link-scope", "", "directories (list separated like PATH) holding the sandbox's own files: the files API serves a hard-linked file only when all its links lie in them (host mode; default the workspace)")
	flag.Parse()
	opts.LinkScope = filepath.SplitList(linkScope)
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if install != "" {
		if err := installSelf(install); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
			return 1
		}
		return 0
	}

	ctx := context.Background()
	if os.Getpid() == 1 {
		// Sandbox code runs as the agent's user and could signal it. The
		// kernel drops signals to a namespace's PID 1 that has no handler,
		// but the Go runtime installs handlers that exit on these; ignoring
		// them restores init's immunity. sandboxd ends a sandbox from
		// outside with SIGKILL (forced removal), which always works.
		signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGABRT,
			syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM,
			syscall.SIGSTKFLT, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGPIPE)
		// Fault signals cannot be ignored; sent with kill() they go to a
		// Notify channel instead of crashing the runtime (real faults still
		// panic), and the channel is drained.
		faults := make(chan os.Signal, 8)
		signal.Notify(faults, syscall.SIGILL, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV)
		go func() {
			for range faults {
			}
		}()
	} else {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		// On the host (local driver), adopt orphaned grandchildren so they
		// are reaped and counted as ours.
		_ = setSubreaper()
	}
	srv, err := agent.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		return 1
	}
	if listenTCP != "" {
		err = serveTCP(ctx, srv, listenTCP, secretFile)
	} else {
		err = srv.Serve(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		return 1
	}
	return 0
}

func setSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
