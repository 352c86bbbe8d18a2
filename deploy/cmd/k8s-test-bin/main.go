// Command k8s-test-bin builds the Kubernetes programs the sandboxd Kubernetes tests run (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kwok) from the Go module proxy, at the
// versions the modules under tools/k8s pin, into a cache outside the tree (stacktest.KubeAssetsDir).
// With every binary already there it builds nothing and returns at once: `make k8s-test-bin` runs it
// before `make test`. No image registry or release download is involved: kind and k3s cannot run
// here, and a fake clientset would accept what a real API server rejects.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// modules are the directories under tools/k8s, each building its `tool` lines.
var modules = []struct {
	dir string
	// versionFlags stamp the release into the binaries as the projects' own builds do, so the API
	// server reports v1.X.Y (clients and kwok read it) rather than v0.0.0-master.
	versionFlags func(version string) []string
}{
	{"etcd", nil},
	{"kwok", func(v string) []string { return []string{"-X", "sigs.k8s.io/kwok/pkg/consts.Version=" + v} }},
	{"kubernetes", func(v string) []string {
		major, rest, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
		minor, _, _ := strings.Cut(rest, ".")
		return []string{
			"-X", "k8s.io/component-base/version.gitVersion=" + v,
			"-X", "k8s.io/component-base/version.gitMajor=" + major,
			"-X", "k8s.io/component-base/version.gitMinor=" + minor,
			"-X", "k8s.io/component-base/version.gitTreeState=clean",
		}
	}},
}

// mainModule is the module each tools/k8s directory requires, for its version.
var mainModule = map[string]string{"etcd": "go.etcd.io/etcd/server/v3", "kwok": "sigs.k8s.io/kwok", "kubernetes": "k8s.io/kubernetes"}

func main() {
	printDir := flag.Bool("print-dir", false, "print the cache directory and exit")
	force := flag.Bool("force", false, "build even when the binaries are cached")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *printDir, *force)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-test-bin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, printDir, force bool) error {
	dir, err := stacktest.KubeAssetsDir()
	if err != nil {
		return err
	}
	if printDir {
		fmt.Println(dir)
		return nil
	}
	if len(stacktest.MissingKubeBinaries(dir)) == 0 && !force {
		fmt.Printf("k8s-test-bin: %s is current\n", dir)
		return nil
	}
	root, err := stacktest.RepoRoot()
	if err != nil {
		return err
	}
	// Built beside the final directory and renamed into place, so an interrupted build never leaves a
	// directory that looks complete, and two trees building at once do not mix their outputs.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "bin-building-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	total := time.Now()
	for _, m := range modules {
		src := filepath.Join(root, stacktest.KubeToolsDir, m.dir)
		ldflags := []string{"-s", "-w"}
		if m.versionFlags != nil {
			v, err := output(ctx, src, "go", "list", "-m", "-f", "{{.Version}}", mainModule[m.dir])
			if err != nil {
				return err
			}
			ldflags = append(ldflags, m.versionFlags(v)...)
		}
		start := time.Now()
		fmt.Printf("k8s-test-bin: building %s (%s)…\n", m.dir, src)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", strings.Join(ldflags, " "), "-o", tmp+"/", "tool")
		cmd.Dir = src
		// The modules are kept out of go.work: their dependency graphs must not meet the product's.
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", m.dir, err)
		}
		fmt.Printf("k8s-test-bin: built %s in %s\n", m.dir, time.Since(start).Round(time.Second))
	}
	// etcd's tool line names its server module, whose binary go build calls "server".
	if err := os.Rename(filepath.Join(tmp, "server"), filepath.Join(tmp, "etcd")); err != nil {
		return fmt.Errorf("etcd binary: %w", err)
	}
	if missing := stacktest.MissingKubeBinaries(tmp); len(missing) > 0 {
		return fmt.Errorf("built, yet %v missing in %s", missing, tmp)
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		if len(stacktest.MissingKubeBinaries(dir)) == 0 {
			return nil // another tree finished the same build first
		}
		return err
	}
	fmt.Printf("k8s-test-bin: %s ready in %s\n", dir, time.Since(total).Round(time.Second))
	return nil
}

func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s in %s: %w", name, strings.Join(args, " "), dir, err)
	}
	return strings.TrimSpace(string(b)), nil
}
