package app_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
	"github.com/mgx-ai/mgx/sandboxd/internal/productimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

// productImage returns the product image (mgx-sandbox:latest) when the engine has it, and otherwise
// skips the test — or fails it under CI=true, where .ci/run builds the image before the tests.
// Building it here would put minutes of downloads inside a test's time budget.
func productImage(t *testing.T) string {
	t.Helper()
	cli := sandboxtest.Docker(t)
	ref, err := productimage.Ready(t.Context(), cli)
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return ref
}

// A sandbox of the product image, through sandboxd, is what the agents expect: the tools of the
// recipe run as the non-root user, /workspace is writable, dev servers poll for changes, and npm
// reaches the registry from the sandbox network.
func TestDockerProductImage(t *testing.T) {
	ref := productImage(t)
	cli := sandboxtest.Docker(t)
	e := start(t, "docker", map[string]string{"SANDBOX_IMAGE": ref, "SANDBOX_MEMORY": "1g", "SANDBOX_PIDS_LIMIT": "512"})
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	l, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	c, err := cli.ContainerInspect(t.Context(), l.GetSandbox().GetContainerId())
	require.NoError(t, err)
	require.Equal(t, ref, c.Config.Image, "sandboxd runs the product image, not the fallback")

	exec := func(t *testing.T, command string, timeout float64) string {
		t.Helper()
		res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: command, Timeout: timeout})
		require.NoError(t, err)
		require.Zero(t, res.GetExitCode(), "%s\nstdout:\n%s\nstderr:\n%s", command, res.GetStdout(), res.GetStderr())
		return res.GetStdout()
	}

	// want is a regular expression the output must match.
	checks := []struct{ name, command, want string }{
		{"non-root user", "id -un; id -u; id -g", `^node\n1000\n1000\n$`},
		// 18 from Debian here, 20 where the Dockerfile was built.
		{"node", "node --version", `^v(18|20)\.`},
		{"npm", "npm --version", `^\d+\.\d+`},
		{"python", "python3 -c 'import sys; print(sys.version_info[0])'", `^3\n$`},
		{"pip and venv", "pip --version >/dev/null && python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'print(1)'", `^1\n$`},
		{"git", "git --version", `^git version 2\.`},
		{"gcc", "gcc --version", `^gcc \(Debian`},
		{"watchers", "command -v inotifywait watchman", `^/usr/bin/inotifywait\n/usr/bin/watchman\n$`},
		{"workspace is the writable working directory", "pwd; touch probe && stat -c '%U' probe", `^/workspace\nnode\n$`},
		{"home is writable", `echo "$HOME"; touch "$HOME/probe"`, `^/home/node\n$`},
		{"polling watchers", `echo "$CHOKIDAR_USEPOLLING $WATCHPACK_POLLING"`, `^1 true\n$`},
		{"charts", `python3 - <<'PY'
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, pandas as pd
pd.DataFrame({"x": [1, 2, 3], "y": [2, 4, 8]}).plot(x="x", y="y")
plt.savefig("/workspace/chart.png")
print(open("/workspace/chart.png", "rb").read(4) == b"\x89PNG")
PY`, `^True\n$`},
	}
	// Every pinned global tool answers with its pinned version.
	pins, err := sandboximage.Packages("npm-packages.txt")
	require.NoError(t, err)
	for _, pin := range pins {
		name, version, _ := strings.Cut(pin, "@")
		checks = append(checks, struct{ name, command, want string }{name, name + " --version", regexp.QuoteMeta(version)})
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			require.Regexp(t, c.want, exec(t, c.command, 60))
		})
	}

	t.Run("npm install from the registry", func(t *testing.T) {
		out := exec(t, `mkdir -p /workspace/app && cd /workspace/app && npm init -y >/dev/null &&
npm install --no-fund --no-audit is-number@7.0.0 >/dev/null && node -e 'console.log(require("is-number")(5))'`, 180)
		require.Equal(t, "true\n", out)
	})

	t.Run("npm and pip install for the user", func(t *testing.T) {
		out := exec(t, `npm install --global --no-fund --no-audit semver@7.6.3 >/dev/null && command -v semver && semver 1.2.3 -i minor`, 180)
		require.Equal(t, "/home/node/.local/bin/semver\n1.3.0\n", out)
		// PyPI is not reachable here; a local project goes the same way into the user's site,
		// which Debian's "externally managed" marker would refuse without the image's pip.conf.
		out = exec(t, `mkdir -p /tmp/hello && cd /tmp/hello && echo 'print("hi")' > hello.py &&
echo 'from setuptools import setup; setup(name="hello", version="1", py_modules=["hello"])' > setup.py &&
pip install --no-build-isolation --no-index . >/dev/null && cd / && python3 -c 'import hello'`, 120)
		require.Equal(t, "hi\n", out)
	})
}
