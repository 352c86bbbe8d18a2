package stacktest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

// KubeBinaries are the Kubernetes programs the Kubernetes tests run: a real control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) and kwok's simulated nodes, built from the
// Go module proxy by `make k8s-test-bin` (deploy/cmd/k8s-test-bin) at the versions tools/k8s pins.
var KubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// KubeToolsDir is where the modules pinning those versions live, relative to the repository root.
const KubeToolsDir = "tools/k8s"

// EnvKubeAssets overrides the directory of KubeBinaries (the name controller-runtime's envtest reads).
const EnvKubeAssets = "KUBEBUILDER_ASSETS"

// KubeAssetsDir is the directory the Kubernetes binaries of this tree are cached in:
// $XDG_CACHE_HOME/mgx/k8s/<key>/bin, the key a hash of every go.mod and go.sum under tools/k8s and the
// Go version, so a version bump builds anew and worktrees on the same versions share one build. It is
// outside the tree because a cold build takes a quarter of an hour on two cores; warm, nothing is built.
func KubeAssetsDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	key, err := KubeKey(filepath.Join(root, KubeToolsDir))
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "mgx", "k8s", key, "bin"), nil
}

// KubeKey hashes the module files under dir (sorted, each with its path) and the Go version.
func KubeKey(dir string) (string, error) {
	var files []string
	for _, pat := range []string{"*/go.mod", "*/go.sum"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return "", err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no modules under %s", dir)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s\x00", runtime.Version())
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// KubeAssets returns the directory holding every one of KubeBinaries ($KUBEBUILDER_ASSETS when set,
// else KubeAssetsDir), or skips t saying how to build them (fails it under CI=true). The tests never
// build them themselves: a cold build is far beyond a test's budget.
func KubeAssets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvKubeAssets)
	if dir == "" {
		var err error
		if dir, err = KubeAssetsDir(); err != nil {
			Unavailable(t, fmt.Errorf("the Kubernetes test binaries: %w", err))
			return ""
		}
	}
	if missing := MissingKubeBinaries(dir); len(missing) > 0 {
		Unavailable(t, fmt.Errorf("the Kubernetes test binaries %v are not in %s (run `make k8s-test-bin`; the first build takes about 15 minutes)", missing, dir))
		return ""
	}
	return dir
}

// MissingKubeBinaries lists the KubeBinaries that dir lacks.
func MissingKubeBinaries(dir string) []string {
	var missing []string
	for _, b := range KubeBinaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	return missing
}
