package stacktest

import (
	"os"
	"strconv"
	"testing"
)

// CI reports whether the CI environment variable is true.
func CI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Unavailable skips t because something it needs is missing (what, and how to get it, in err), or
// fails it under CI=true.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if CI() {
		t.Fatalf("stacktest: %v (CI=true: nothing may be skipped, install what is missing)", err)
		return
	}
	t.Skipf("stacktest: %v; skipping", err)
}

// baseEnv is what every child gets besides its own variables: enough to find binaries and a home,
// nothing else of the developer's shell (an OPENAI_API_KEY there must not turn a test's scripted
// agentd into a paid one).
func baseEnv() map[string]string {
	env := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "DOCKER_HOST", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}
