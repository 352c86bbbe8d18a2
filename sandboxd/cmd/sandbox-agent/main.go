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
	"syscall"

	"github.com/mgx-ai/mgx/sandboxd/internal/agent"
)

func main() { os.Exit(run()) }

func run() int {
	var opts agent.Options
	flag.StringVar(&opts.Socket, "listen", "/.mgx/run/agent.sock", "unix socket to serve on")
	flag.StringVar(&opts.Workspace, "workspace", "/workspace", "directory files and commands are confined to")
	flag.StringVar(&opts.StateDir, "state-dir", "", "directory for process logs (default $TMPDIR/mgx-agent)")
	flag.StringVar(&opts.User, "user", "", "run commands as this user when the agent runs as root")
	flag.BoolVar(&opts.OwnedPortsOnly, "owned-ports", false, "report only ports of the agent's own descendants (host mode)")
	flag.Parse()
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	// As PID 1 a signal without a handler is ignored, so SIGTERM (docker
	// stop) must be caught explicitly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if os.Getpid() != 1 {
		// Outside a container, adopt orphaned grandchildren so they are
		// reaped and counted as ours.
		_ = setSubreaper()
	}
	srv, err := agent.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		return 1
	}
	if err := srv.Serve(ctx); err != nil {
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
