package stacktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvBinDir names the directory holding prebuilt binaries (`make build-test` fills bin/ and
// `make test` sets it). When it is set, Main builds nothing and every binary a package asks for must
// be there.
const EnvBinDir = "MGX_BIN_DIR"

// binary is a main package of the repository the tests run. Static ones are built as `make`
// builds them: CGO off, trimmed paths.
type binary struct {
	pkg    string // relative to the repository root
	static bool
}

// binaries are the product's programs by the name tests ask for. The static/ variants are what the
// service images ship (FROM scratch); sandbox-agent and wsecho run inside arbitrary sandbox images,
// so they are always static.
var binaries = map[string]binary{
	"gateway":                {"./gateway/cmd/gateway", false},
	"agentd":                 {"./agentd/cmd/agentd", false},
	"sandboxd":               {"./sandboxd/cmd/sandboxd", false},
	"mgx-local":              {"./deploy/local/cmd/mgx-local", false},
	"sandbox-agent":          {"./sandboxd/cmd/sandbox-agent", true},
	"wsecho":                 {"./sandboxd/internal/sandboxtest/wsecho", true},
	"static/gateway":         {"./gateway/cmd/gateway", true},
	"static/agentd":          {"./agentd/cmd/agentd", true},
	"static/sandboxd":        {"./sandboxd/cmd/sandboxd", true},
	"static/sandbox-agent":   {"./sandboxd/cmd/sandbox-agent", true},
	"static/mgx-healthcheck": {"./deploy/cmd/mgx-healthcheck", true},
}

// buildTimeout bounds the fallback build of Main: its own budget, spent before any test starts.
const buildTimeout = 10 * time.Minute

// Option configures Main.
type Option func(*mainOptions)

type mainOptions struct {
	binaries []string
}

// Binaries names the programs the package's tests run (keys of the product's binaries: "gateway",
// "agentd", "sandboxd", "sandbox-agent", "mgx-local", "wsecho", and "static/<name>" for the image
// builds).
func Binaries(names ...string) Option {
	return func(o *mainOptions) { o.binaries = append(o.binaries, names...) }
}

var bins struct {
	mu    sync.Mutex
	dir   string
	ready map[string]bool
}

// Main runs the package's tests: it first provides the binaries they need (from $MGX_BIN_DIR, or
// built once now), and afterwards stops the shared Redis server and removes what it built. Use it as
//
//	func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries("sandboxd")) }
func Main(m *testing.M, opts ...Option) {
	var o mainOptions
	for _, opt := range opts {
		opt(&o)
	}
	cleanup, err := prepare(o.binaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stacktest:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopShared()
	cleanup()
	os.Exit(code)
}

func prepare(names []string) (cleanup func(), err error) {
	cleanup = func() {}
	if len(names) == 0 {
		return cleanup, nil
	}
	for _, n := range names {
		if _, ok := binaries[n]; !ok {
			return cleanup, fmt.Errorf("unknown binary %q (known: %s)", n, strings.Join(known(), ", "))
		}
	}
	bins.mu.Lock()
	defer bins.mu.Unlock()
	bins.ready = map[string]bool{}
	if dir := os.Getenv(EnvBinDir); dir != "" {
		var missing []string
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				missing = append(missing, n)
			}
			bins.ready[n] = true
		}
		if len(missing) > 0 {
			return cleanup, fmt.Errorf("%s=%s lacks %s (run make build-test, or unset %s to build them here)",
				EnvBinDir, dir, strings.Join(missing, ", "), EnvBinDir)
		}
		bins.dir = dir
		return cleanup, nil
	}
	dir, err := os.MkdirTemp("", "mgx-testbin-")
	if err != nil {
		return cleanup, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	start := time.Now()
	if err := build(dir, names); err != nil {
		cleanup()
		return func() {}, err
	}
	fmt.Fprintf(os.Stderr, "stacktest: built %s in %s (set %s to use prebuilt ones)\n",
		strings.Join(names, ", "), time.Since(start).Round(100*time.Millisecond), EnvBinDir)
	for _, n := range names {
		bins.ready[n] = true
	}
	bins.dir = dir
	return cleanup, nil
}

// build compiles names into dir with one go command per kind (dynamic, static), from the repository
// root through its go.work, so it works from any module and with GOWORK=off in the caller.
func build(dir string, names []string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	byKind := map[bool]map[string][]string{} // static → subdir → packages
	for _, n := range names {
		b := binaries[n]
		sub := filepath.Dir(n)
		if byKind[b.static] == nil {
			byKind[b.static] = map[string][]string{}
		}
		if !slices.Contains(byKind[b.static][sub], b.pkg) {
			byKind[b.static][sub] = append(byKind[b.static][sub], b.pkg)
		}
	}
	for static, subs := range byKind {
		for sub, pkgs := range subs {
			out := filepath.Join(dir, sub)
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			args := []string{"build", "-o", out + string(filepath.Separator)}
			env := append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
			if static {
				args = append(args, "-trimpath", "-ldflags=-s -w")
				env = append(env, "CGO_ENABLED=0")
			}
			cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
			cmd.Dir, cmd.Env = root, env
			if b, err := cmd.CombinedOutput(); err != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("go build %s: not done within %s", strings.Join(pkgs, " "), buildTimeout)
				}
				return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
			}
		}
	}
	return nil
}

// Bin returns the path of a binary the package declared in Main.
func Bin(t testing.TB, name string) string {
	t.Helper()
	bins.mu.Lock()
	defer bins.mu.Unlock()
	if !bins.ready[name] {
		t.Fatalf("stacktest: binary %q was not prepared: list it in stacktest.Main(m, stacktest.Binaries(...)) of this package", name)
	}
	p, err := filepath.Abs(filepath.Join(bins.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BinDir is the directory of the prepared binaries (the launcher mgx-local finds the services next
// to itself there).
func BinDir(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		Bin(t, n)
	}
	bins.mu.Lock()
	defer bins.mu.Unlock()
	d, err := filepath.Abs(bins.dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// RepoRoot is the repository's root: the nearest directory above the working directory (a test's
// package directory) that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run the tests inside the repository")
		}
		dir = parent
	}
}

func known() []string {
	var k []string
	for n := range binaries {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// PrivateBinDir links (or, across file systems, copies) the named binaries into a fresh directory of
// t's own and returns it: processes started from there are this test's alone, so a test can prove
// that nothing it started outlives it even while other tests run the same binaries.
func PrivateBinDir(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		src, dst := Bin(t, n), filepath.Join(dir, filepath.Base(n))
		if err := os.Link(src, dst); err == nil {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
