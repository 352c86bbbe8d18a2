// Package sandboxtest provides what sandboxd's integration tests need: the
// static sandbox-agent and fixture binaries built once per test binary, and
// the real Docker engine with the locally built dev image. Docker tests skip
// when no engine answers, unless CI=true (then they fail).
package sandboxtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
)

// Image is the image the tests run sandboxes from.
const Image = devimage.DefaultRef

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

func moduleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// build compiles a package of this module statically, once per test binary.
func build(t testing.TB, pkg, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "sandboxtest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = moduleDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// AgentBinary returns a freshly built static sandbox-agent.
func AgentBinary(t testing.TB) string { return build(t, "./cmd/sandbox-agent", "sandbox-agent") }

// SandboxdBinary returns a freshly built sandboxd.
func SandboxdBinary(t testing.TB) string { return build(t, "./cmd/sandboxd", "sandboxd") }

// EchoServerBinary returns the static WebSocket echo fixture.
func EchoServerBinary(t testing.TB) string {
	return build(t, "./internal/sandboxtest/wsecho", "wsecho")
}

// Cleanup removes the built binaries; call it from TestMain.
func Cleanup() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

func ci() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

var (
	imageOnce sync.Once
	imageErr  error
)

// Docker returns a client of the local engine with the dev image present,
// or skips the test (fails it under CI=true) when no engine answers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
	}
	if err != nil {
		if ci() {
			t.Fatalf("docker engine required under CI: %v", err)
		}
		t.Skipf("no docker engine: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	imageOnce.Do(func() {
		imageErr = devimage.Ensure(context.Background(), cli, Image, devimage.DefaultBusybox)
	})
	if imageErr != nil {
		if ci() {
			t.Fatalf("build dev image: %v", imageErr)
		}
		t.Skipf("cannot build the dev image: %v", imageErr)
	}
	return cli
}

// RunDir returns a short per-test directory for agent sockets (unix socket
// paths are limited to 108 bytes, and t.TempDir paths can be long).
func RunDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mgxsb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}
