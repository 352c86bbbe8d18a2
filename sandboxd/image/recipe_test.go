package image_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
)

// dockerfile returns the Dockerfile's instructions, continuation lines joined and comments dropped.
func dockerfile(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// expand splits an ENV instruction with several k=v pairs into one instruction each.
func expand(instr string) []string {
	keyword, rest, _ := strings.Cut(instr, " ")
	if keyword != "ENV" {
		return []string{instr}
	}
	var out []string
	for _, kv := range strings.Fields(rest) {
		out = append(out, "ENV "+kv)
	}
	return out
}

// The registry-free build applies Config where the Dockerfile declares its configuration: the two
// images must be configured alike, and both must run the one recipe.
func TestDockerfileMatchesConfig(t *testing.T) {
	var config, runs []string
	for _, instr := range dockerfile(t) {
		switch keyword, _, _ := strings.Cut(instr, " "); keyword {
		case "ENV", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "LABEL":
			config = append(config, expand(instr)...)
		case "COPY", "RUN":
			runs = append(runs, instr)
		}
	}
	require.Equal(t, sandboximage.Config, config)
	require.Equal(t, []string{
		"COPY setup.sh apt-packages.txt npm-packages.txt /tmp/mgx-image/",
		"RUN sh /tmp/mgx-image/setup.sh",
	}, runs, "the Dockerfile runs the shared recipe and nothing else")
}

func TestPackageLists(t *testing.T) {
	apt, err := sandboximage.Packages("apt-packages.txt")
	require.NoError(t, err)
	for _, want := range []string{"build-essential", "python3", "python3-pip", "python3-venv", "git", "inotify-tools", "curl", "ca-certificates", "procps"} {
		require.Contains(t, apt, want)
	}
	require.NotContains(t, apt, "nodejs", "node comes from the base image or, without one, from setup.sh")

	npm, err := sandboximage.Packages("npm-packages.txt")
	require.NoError(t, err)
	pinned := regexp.MustCompile(`^(@[a-z0-9-]+/)?[a-z0-9.-]+@\d+\.\d+\.\d+$`)
	var names []string
	for _, p := range npm {
		require.Regexp(t, pinned, p, "npm tools are pinned to an exact version")
		names = append(names, p[:strings.LastIndex(p, "@")])
	}
	require.ElementsMatch(t, []string{"pnpm", "yarn", "vite", "next", "pm2", "turbo"}, names)
}
