package productimage_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/productimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

// busyboxBase is a Base of the host's static busybox: the builder's whole pipeline (tarball,
// import, recipe in a container, commit, labels, cache mount) in seconds instead of a debootstrap.
type busyboxBase struct{ made *int }

func (busyboxBase) Key() string { return "busybox-test" }

func (b busyboxBase) Tarball(_ context.Context, dir string, _ io.Writer) (string, error) {
	path := filepath.Join(dir, "busybox.tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	rootfs, err := devimage.RootFS(devimage.DefaultBusybox)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	*b.made++
	return path, os.WriteFile(path, rootfs, 0o644)
}

const setup = `#!/bin/sh
set -eu
here=$(dirname "$0")
cat "$here/greeting.txt" > /greeting
ls "$here/ca-certificates" > /cas 2>/dev/null || true
# The cache directory is a host directory: what is written there outlives the build.
date +%s%N >> "$MGX_BUILD_CACHE/runs"
echo "== step one"
mkdir -p /workspace && chown 1000:1000 /workspace
rm -rf /tmp/*
`

func recipe(greeting string, extra ...string) productimage.Recipe {
	return productimage.Recipe{
		Files: fstest.MapFS{
			"setup.sh":     {Data: []byte(setup)},
			"greeting.txt": {Data: []byte(greeting)},
		},
		Config: append([]string{"ENV GREETING=" + greeting, "WORKDIR /workspace", "USER 1000:1000", `CMD ["/bin/sh"]`}, extra...),
	}
}

func newBuilder(t *testing.T, cli *client.Client, r productimage.Recipe) (*productimage.Builder, *int, *bytes.Buffer) {
	t.Helper()
	made := new(int)
	ref := "mgx-test-productimage-" + uuid.NewString()[:8] + ":latest"
	t.Cleanup(func() {
		// Only what this test made: its tag (with the untagged base below it).
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	var log bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("builder log:\n%s", log.String())
		}
	})
	return &productimage.Builder{
		Client: cli, Ref: ref, Base: busyboxBase{made: made}, Recipe: r,
		CacheDir: t.TempDir(), Log: &log,
	}, made, &log
}

// run runs cmd in a throwaway container of ref and returns its output.
func run(t *testing.T, cli *client.Client, ref string, cmd ...string) string {
	t.Helper()
	ctx := t.Context()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, Cmd: cmd}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	require.NoError(t, err)
	defer func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) }()
	require.NoError(t, cli.ContainerStart(ctx, c.ID, container.StartOptions{}))
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		require.NoError(t, err)
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	require.NoError(t, err)
	defer rc.Close()
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, rc)
	require.NoError(t, err)
	return out.String()
}

func TestBuildEnsureRebuild(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx := t.Context()
	b, made, _ := newBuilder(t, cli, recipe("hello"))

	st, err := b.State(ctx)
	require.NoError(t, err)
	require.Equal(t, productimage.Missing, st)

	first, err := b.Ensure(ctx)
	require.NoError(t, err)
	require.True(t, first.Built)
	require.Equal(t, productimage.Missing, first.State)

	info, err := cli.ImageInspect(ctx, b.Ref)
	require.NoError(t, err)
	require.Equal(t, first.ID, info.ID)
	require.Equal(t, first.Hash, info.Config.Labels[productimage.LabelRecipe])
	require.Equal(t, "busybox-test", info.Config.Labels[productimage.LabelBase])
	require.Equal(t, "1000:1000", info.Config.User)
	require.Equal(t, "/workspace", info.Config.WorkingDir)
	require.Contains(t, info.Config.Env, "GREETING=hello")
	require.Equal(t, []string{"/bin/sh"}, info.Config.Cmd)
	for _, kv := range info.Config.Env {
		require.NotContains(t, kv, "MGX_BUILD_CACHE", "build-only settings stay out of the image")
	}

	require.Equal(t, "hello", run(t, cli, b.Ref, "cat", "/greeting"))
	require.Equal(t, "1000\n", run(t, cli, b.Ref, "stat", "-c", "%u", "/workspace"))
	require.Equal(t, "", run(t, cli, b.Ref, "ls", "/tmp"), "the recipe leaves nothing in /tmp")
	runs, err := os.ReadFile(filepath.Join(b.CacheDir, "packages", "runs"))
	require.NoError(t, err, "the package cache is a host directory")
	require.Len(t, strings.Fields(string(runs)), 1)
	log, err := os.ReadFile(filepath.Join(b.CacheDir, "build.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "== step one")

	t.Run("unchanged recipe is a no-op", func(t *testing.T) {
		again, err := b.Ensure(ctx)
		require.NoError(t, err)
		require.False(t, again.Built)
		require.Equal(t, productimage.Current, again.State)
		require.Equal(t, first.ID, again.ID)
	})

	t.Run("changed recipe rebuilds from the cached base and removes the old image", func(t *testing.T) {
		b.Recipe = recipe("bonjour")
		st, err := b.State(ctx)
		require.NoError(t, err)
		require.Equal(t, productimage.Stale, st)
		res, err := b.Ensure(ctx)
		require.NoError(t, err)
		require.True(t, res.Built)
		require.NotEqual(t, first.Hash, res.Hash)
		require.Equal(t, "bonjour", run(t, cli, b.Ref, "cat", "/greeting"))
		require.Equal(t, 1, *made, "the base tarball is made once and then read from the cache")
		_, err = cli.ImageInspect(ctx, first.ID)
		require.True(t, cerrdefs.IsNotFound(err), "the replaced image is removed: %v", err)
	})

	t.Run("local CAs are copied beside setup.sh and tracked apart from the recipe", func(t *testing.T) {
		r := recipe("bonjour")
		r.LocalCAs = map[string][]byte{"proxy.crt": []byte("-----BEGIN CERTIFICATE-----\n")}
		b.Recipe = r
		st, err := b.State(ctx)
		require.NoError(t, err)
		require.Equal(t, productimage.Stale, st, "other CAs make the image stale")
		res, err := b.Ensure(ctx)
		require.NoError(t, err)
		require.True(t, res.Built)
		require.Equal(t, "proxy.crt\n", run(t, cli, b.Ref, "cat", "/cas"))
		info, err := cli.ImageInspect(ctx, b.Ref)
		require.NoError(t, err)
		require.NotEqual(t, "none", info.Config.Labels[productimage.LabelLocalCAs])
	})

	t.Run("forced build replaces a current image", func(t *testing.T) {
		before, err := cli.ImageInspect(ctx, b.Ref)
		require.NoError(t, err)
		res, err := b.Build(ctx)
		require.NoError(t, err)
		require.True(t, res.Built)
		require.Equal(t, productimage.Current, res.State)
		require.NotEqual(t, before.ID, res.ID)
	})
}

// A failing recipe reports its output, leaves no container and no image, and the previous image
// keeps its tag.
func TestBuildFailure(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx := t.Context()
	b, _, log := newBuilder(t, cli, recipe("hello"))
	good, err := b.Ensure(ctx)
	require.NoError(t, err)

	r := recipe("hello")
	r.Files.(fstest.MapFS)["setup.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\necho apt says no >&2\nexit 3\n")}
	b.Recipe = r
	log.Reset()
	_, err = b.Ensure(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "exited with 3")
	require.Contains(t, err.Error(), "apt says no")

	info, err := cli.ImageInspect(ctx, b.Ref)
	require.NoError(t, err)
	require.Equal(t, good.ID, info.ID, "a failed build keeps the image that worked")
	base := regexp.MustCompile(`imported the base as ([0-9a-f]{12})`).FindStringSubmatch(log.String())
	require.NotNil(t, base, log.String())
	_, err = cli.ImageInspect(ctx, base[1])
	require.True(t, cerrdefs.IsNotFound(err), "the failed build's base is removed: %v", err)
	left, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "mgx-sandbox-image-build-"+good.Hash[:12]))})
	require.NoError(t, err)
	require.Empty(t, left)
}

// A build killed after importing its base leaves an untagged image; the next build removes it.
func TestLeftoverBaseIsRemoved(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx := t.Context()
	b, _, log := newBuilder(t, cli, recipe("hello"))
	rootfs, err := devimage.RootFS(devimage.DefaultBusybox)
	require.NoError(t, err)
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, "",
		image.ImportOptions{Changes: []string{"LABEL org.mgx.sandbox.built-for=" + b.Ref}})
	require.NoError(t, err)
	out, err := io.ReadAll(rc)
	require.NoError(t, err)
	rc.Close()
	left := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(string(out))
	require.NotEmpty(t, left, string(out))
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), left, image.RemoveOptions{Force: true}) })

	_, err = b.Ensure(ctx)
	require.NoError(t, err)
	_, err = cli.ImageInspect(ctx, left)
	require.True(t, cerrdefs.IsNotFound(err), "leftover base still there: %v", err)
	require.Contains(t, log.String(), "left by an interrupted build")
}

// An image of the same name that this builder did not make (a `docker build` of the Dockerfile) is
// the user's: Ensure keeps it, Build replaces it.
func TestEnsureKeepsForeignImage(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx := t.Context()
	b, _, _ := newBuilder(t, cli, recipe("hello"))
	require.NoError(t, cli.ImageTag(ctx, sandboxtest.Image, b.Ref))

	res, err := b.Ensure(ctx)
	require.NoError(t, err)
	require.False(t, res.Built)
	require.Equal(t, productimage.Foreign, res.State)

	res, err = b.Build(ctx)
	require.NoError(t, err)
	require.True(t, res.Built)
	_, err = cli.ImageInspect(ctx, sandboxtest.Image)
	require.NoError(t, err, "the image that had the tag before is not removed")
}

// Two builds at once on one machine: the second waits for the first and finds its image.
func TestConcurrentEnsureBuildsOnce(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b, _, _ := newBuilder(t, cli, recipe("hello"))
	other := *b
	other.Log = io.Discard
	results := make(chan productimage.Result, 2)
	errs := make(chan error, 2)
	for _, bb := range []*productimage.Builder{b, &other} {
		go func() {
			res, err := bb.Ensure(ctx)
			results <- res
			errs <- err
		}()
	}
	built := 0
	for range 2 {
		require.NoError(t, <-errs)
		if (<-results).Built {
			built++
		}
	}
	require.Equal(t, 1, built)
	runs, err := os.ReadFile(filepath.Join(b.CacheDir, "packages", "runs"))
	require.NoError(t, err)
	require.Len(t, strings.Fields(string(runs)), 1)
}

// The product image of this recipe, once built (make sandbox-image; .ci/run does it before the
// tests), makes every later build a no-op: nothing is downloaded, nothing rebuilt.
func TestProductImageUnchangedRecipeIsNoOp(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cacheDir := t.TempDir()
	b, err := productimage.Product(cli, productimage.Options{CacheDir: cacheDir, CADir: productimage.DefaultCADir, Log: io.Discard})
	require.NoError(t, err)
	st, err := b.State(ctx)
	require.NoError(t, err)
	if st != productimage.Current {
		msg := b.Ref + " is " + st.String() + "; `make sandbox-image` builds it (.ci/run does before the tests)"
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci && st != productimage.Foreign {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	before, err := cli.ImageInspect(ctx, b.Ref)
	require.NoError(t, err)
	res, err := b.Ensure(ctx)
	require.NoError(t, err)
	require.False(t, res.Built)
	require.Equal(t, before.ID, res.ID)
	entries, err := os.ReadDir(cacheDir)
	require.NoError(t, err)
	require.Empty(t, entries, "a no-op touches no cache")
	t.Logf("no-op Ensure of %s took %s", b.Ref, res.Took)

	hash, err := productimage.ProductHash()
	require.NoError(t, err)
	require.Equal(t, hash, before.Config.Labels[productimage.LabelRecipe], "sandboxd's idea of the recipe is the builder's")
}
