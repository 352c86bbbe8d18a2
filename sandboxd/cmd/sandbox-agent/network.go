package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mgx-ai/mgx/sandboxd/internal/agent"
)

// serveTCP serves srv on a TCP address behind the per-sandbox secret (Kubernetes pods).
func serveTCP(ctx context.Context, srv *agent.Server, addr, secretFile string) error {
	if secretFile == "" {
		return errors.New("-listen-tcp needs -secret-file: an agent on the network never serves without a secret")
	}
	secret, err := agent.ReadSecret(secretFile)
	if err != nil {
		return err
	}
	ln, err := agent.ListenSecret(addr, secret)
	if err != nil {
		return err
	}
	return srv.ServeListener(ctx, ln)
}

// installSelf copies the running binary to dst (executable, written beside it and renamed), so an
// init container from sandboxd's image can stage the agent into a volume the sandbox image mounts.
func installSelf(dst string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".sandbox-agent-*")
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return fmt.Errorf("install: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
