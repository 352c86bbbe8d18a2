package productimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sys/unix"
)

// Paths inside the build container.
const (
	// recipeDir receives Recipe.Files; setup.sh cleans /tmp at its end, so nothing of it stays.
	recipeDir = "/tmp/mgx-recipe"
	// labelBuiltFor marks what the builder imports with the Ref it builds, so that a base left
	// behind by a killed build can be found and removed by the next one.
	labelBuiltFor = "org.mgx.sandbox.built-for"
	// cacheMount is where the host's package cache is mounted. /mnt exists, empty, in every Debian
	// root, so the mount leaves no trace in the committed layer.
	cacheMount = "/mnt"
)

// Builder builds one image from a base and a recipe.
type Builder struct {
	Client *client.Client
	// Ref is the tag of the built image.
	Ref    string
	Base   Base
	Recipe Recipe
	// CacheDir holds what outlives a build: base tarballs, apt archives, the npm cache, the log of
	// the last build, and the lock that serialises builds on one machine.
	CacheDir string
	// Log receives progress, one line per step.
	Log io.Writer
}

// Base makes the root filesystem a recipe runs on.
type Base interface {
	// Key identifies the root filesystem (it is part of the recipe hash and names the cached tarball).
	Key() string
	// Tarball returns the path of a tar archive of the root filesystem, made in dir when missing.
	Tarball(ctx context.Context, dir string, log io.Writer) (string, error)
}

// State is how an image on the engine compares with the recipe.
type State int

const (
	// Missing: no image has the builder's Ref.
	Missing State = iota
	// Foreign: an image has the Ref but no recipe label: built by `docker build` from the
	// Dockerfile, or elsewhere. Ensure leaves it alone; Build replaces it.
	Foreign
	// Stale: this builder made the image from another recipe, or for other local CAs.
	Stale
	// Current: the image carries this recipe's hash.
	Current
)

func (s State) String() string {
	return [...]string{"missing", "foreign", "stale", "current"}[s]
}

// Result describes an Ensure or a Build.
type Result struct {
	ID   string
	Hash string
	// State is the image's state before the call.
	State State
	Built bool
	Took  time.Duration
}

// State reports whether the engine has the image of this recipe.
func (b *Builder) State(ctx context.Context) (State, error) {
	hash, err := b.Hash()
	if err != nil {
		return Missing, err
	}
	st, _, err := b.state(ctx, hash)
	return st, err
}

func (b *Builder) state(ctx context.Context, hash string) (State, string, error) {
	info, err := b.Client.ImageInspect(ctx, b.Ref)
	if cerrdefs.IsNotFound(err) {
		return Missing, "", nil
	}
	if err != nil {
		return Missing, "", fmt.Errorf("inspect %s: %w", b.Ref, err)
	}
	var labels map[string]string
	if info.Config != nil {
		labels = info.Config.Labels
	}
	switch labels[LabelRecipe] {
	case "":
		return Foreign, info.ID, nil
	case hash:
		if labels[LabelLocalCAs] == b.Recipe.localCAsHash() {
			return Current, info.ID, nil
		}
	}
	return Stale, info.ID, nil
}

// Ensure builds the image unless the engine has it from this very recipe, or has an image of that
// name this builder did not make (Result.State tells; the user built it on purpose).
func (b *Builder) Ensure(ctx context.Context) (Result, error) { return b.build(ctx, false) }

// Build builds the image whatever the engine has (the base tarball and the caches are still used).
func (b *Builder) Build(ctx context.Context) (Result, error) { return b.build(ctx, true) }

func (b *Builder) build(ctx context.Context, force bool) (Result, error) {
	begin := time.Now()
	hash, err := b.Hash()
	if err != nil {
		return Result{}, err
	}
	st, id, err := b.state(ctx, hash)
	if err != nil {
		return Result{}, err
	}
	if (st == Current || st == Foreign) && !force {
		return Result{ID: id, Hash: hash, State: st, Took: time.Since(begin)}, nil
	}
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("cache dir: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(b.CacheDir, "build.lock"), b.Log)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	// Another build may have finished while this one waited for the lock.
	if st, id, err = b.state(ctx, hash); err != nil {
		return Result{}, err
	} else if (st == Current || st == Foreign) && !force {
		return Result{ID: id, Hash: hash, State: st, Took: time.Since(begin)}, nil
	}
	b.logf("building %s (recipe %s, was %s); cache %s", b.Ref, hash[:12], st, b.CacheDir)
	if n := len(b.Recipe.LocalCAs); n > 0 {
		b.logf("the image will trust %d local certificate authorities of this machine", n)
	}

	b.pruneLeftovers(ctx)
	tarball, err := b.Base.Tarball(ctx, filepath.Join(b.CacheDir, "base"), b.Log)
	if err != nil {
		return Result{}, err
	}
	baseID, err := b.importBase(ctx, tarball)
	if err != nil {
		return Result{}, err
	}
	newID, err := b.runRecipe(ctx, baseID, hash)
	if err != nil {
		// The base is ours and has no child now: leave nothing behind.
		_, _ = b.Client.ImageRemove(context.WithoutCancel(ctx), baseID, image.RemoveOptions{PruneChildren: true})
		return Result{}, err
	}
	if id != "" && id != newID {
		b.removeOld(ctx, id)
	}
	took := time.Since(begin)
	b.logf("built %s (%s) in %s", b.Ref, shortID(newID), took.Round(time.Second))
	return Result{ID: newID, Hash: hash, State: st, Built: true, Took: took}, nil
}

// importBase imports the base tarball untagged: it becomes the parent layer of the image, and
// removing the image removes it too.
func (b *Builder) importBase(ctx context.Context, tarball string) (string, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b.logf("importing the base %s", filepath.Base(tarball))
	begin := time.Now()
	rc, err := b.Client.ImageImport(ctx, image.ImportSource{Source: f, SourceName: "-"}, "", image.ImportOptions{
		Message: "mgx sandbox base: " + b.Base.Key(),
		Changes: []string{"LABEL " + labelBuiltFor + "=" + b.Ref},
	})
	if err != nil {
		return "", fmt.Errorf("import base: %w", err)
	}
	defer rc.Close()
	// The stream ends with the new image's id as its status.
	var id string
	dec := json.NewDecoder(rc)
	for {
		// The stream's messages (jsonmessage.JSONMessage, whose package drags in terminal code).
		var m struct {
			Status string `json:"status"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("import base: %w", err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("import base: %s", m.Error.Message)
		}
		if strings.HasPrefix(m.Status, "sha256:") {
			id = strings.TrimSpace(m.Status)
		}
	}
	if id == "" {
		return "", errors.New("import base: the engine returned no image id")
	}
	b.logf("imported the base as %s in %s", shortID(id), time.Since(begin).Round(time.Second))
	return id, nil
}

// runRecipe runs setup.sh in a container of the base and commits it as the image. The container
// is removed whatever happens.
func (b *Builder) runRecipe(ctx context.Context, baseID, hash string) (string, error) {
	pkgCache := filepath.Join(b.CacheDir, "packages")
	if err := os.MkdirAll(pkgCache, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	name := "mgx-sandbox-image-build-" + hash[:12]
	// A build killed before its cleanup leaves its container; the lock says none is running now.
	_ = b.Client.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	created, err := b.Client.ContainerCreate(ctx, &container.Config{
		Image: baseID,
		User:  "0:0",
		// Passed on the command line rather than as the container's environment, which the
		// commit would copy into the image.
		Cmd: []string{"/bin/sh", "-c", "MGX_BUILD_CACHE=" + cacheMount + " exec /bin/sh " + recipeDir + "/setup.sh"},
	}, &container.HostConfig{
		Binds: []string{pkgCache + ":" + cacheMount},
		// The engine's default bridge: the build downloads from the Debian mirror and the npm
		// registry, and nothing else runs next to it.
		NetworkMode: "bridge",
		// followLog reads the output back through the engine, whatever its default log driver.
		LogConfig: container.LogConfig{Type: "json-file"},
	}, nil, nil, name)
	if err != nil {
		return "", fmt.Errorf("create build container: %w", err)
	}
	defer func() {
		_ = b.Client.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
	}()

	files, err := tarRecipe(b.Recipe, strings.TrimPrefix(recipeDir, "/tmp/"))
	if err != nil {
		return "", err
	}
	if err := b.Client.CopyToContainer(ctx, created.ID, "/tmp", files, container.CopyToContainerOptions{}); err != nil {
		return "", fmt.Errorf("copy the recipe into the build container: %w", err)
	}
	b.logf("running setup.sh (full log: %s)", filepath.Join(b.CacheDir, "build.log"))
	if err := b.Client.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start build container: %w", err)
	}
	tail, logErr := b.followLog(ctx, created.ID)
	waitC, errC := b.Client.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
		if w.Error != nil {
			return "", fmt.Errorf("build container: %s", w.Error.Message)
		}
	case err := <-errC:
		return "", fmt.Errorf("wait for the build container: %w", err)
	}
	if code != 0 {
		return "", fmt.Errorf("setup.sh exited with %d; its last lines:\n%s", code, tail.String())
	}
	if logErr != nil {
		return "", fmt.Errorf("build log: %w", logErr)
	}

	b.logf("committing %s", b.Ref)
	begin := time.Now()
	changes := append([]string(nil), b.Recipe.Config...)
	changes = append(changes, "LABEL "+LabelRecipe+"="+hash, "LABEL "+LabelBase+"="+b.Base.Key(),
		"LABEL "+LabelLocalCAs+"="+b.Recipe.localCAsHash())
	res, err := b.Client.ContainerCommit(ctx, created.ID, container.CommitOptions{
		Reference: b.Ref,
		Comment:   "mgx sandbox image, recipe " + hash,
		Changes:   changes,
	})
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", b.Ref, err)
	}
	b.logf("committed in %s", time.Since(begin).Round(time.Second))
	return res.ID, nil
}

// followLog copies the build container's output into build.log in the cache directory until the
// container stops, passes setup.sh's step lines ("== ...") to Log, and keeps the last lines for an
// error message.
func (b *Builder) followLog(ctx context.Context, id string) (*lastLines, error) {
	tail := &lastLines{max: 60}
	f, err := os.Create(filepath.Join(b.CacheDir, "build.log"))
	if err != nil {
		return tail, err
	}
	defer f.Close()
	rc, err := b.Client.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return tail, err
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			switch {
			case strings.HasPrefix(line, "== "):
				b.logf("  %-7s %s", "+"+time.Since(begin).Round(time.Second).String(), strings.TrimPrefix(line, "== "))
			case strings.HasPrefix(line, "   "):
				b.logf("          %s", line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	out := io.MultiWriter(f, pw)
	_, err = stdcopy.StdCopy(out, out, rc)
	_ = pw.Close()
	<-done
	return tail, err
}

// pruneLeftovers removes what killed builds of this Ref left: untagged images nothing is built on.
// A base in use by a running build is refused by the engine, so this never breaks one.
func (b *Builder) pruneLeftovers(ctx context.Context) {
	left, err := b.Client.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(
		filters.Arg("dangling", "true"), filters.Arg("label", labelBuiltFor+"="+b.Ref))})
	if err != nil {
		return
	}
	for _, img := range left {
		if _, err := b.Client.ImageRemove(ctx, img.ID, image.RemoveOptions{PruneChildren: true}); err == nil {
			b.logf("removed %s, left by an interrupted build", shortID(img.ID))
		}
	}
}

// removeOld removes the image the new one replaced, if this builder made it (it has a recipe label)
// and no container uses it; a sandbox still running on it keeps it until the next build.
func (b *Builder) removeOld(ctx context.Context, id string) {
	info, err := b.Client.ImageInspect(ctx, id)
	if err != nil || info.Config == nil || info.Config.Labels[LabelRecipe] == "" || len(info.RepoTags) > 0 {
		return
	}
	if _, err := b.Client.ImageRemove(ctx, id, image.RemoveOptions{PruneChildren: true}); err == nil {
		b.logf("removed the previous image %s", shortID(id))
	}
}

func (b *Builder) logf(format string, args ...any) {
	if b.Log != nil {
		fmt.Fprintf(b.Log, format+"\n", args...)
	}
}

// tarRecipe packs the recipe's files, and its local CAs under ca-certificates/, below dir/ as a tar
// stream for CopyToContainer; scripts are executable.
func tarRecipe(r Recipe, dir string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		mode := int64(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/" + name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	mkdir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/" + name, Mode: 0o755})
	}
	err := mkdir("")
	if err == nil {
		err = fs.WalkDir(r.Files, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || path == "." {
				return err
			}
			if d.IsDir() {
				return mkdir(path + "/")
			}
			data, err := fs.ReadFile(r.Files, path)
			if err != nil {
				return err
			}
			return add(path, data)
		})
	}
	if err == nil && len(r.LocalCAs) > 0 {
		err = mkdir("ca-certificates/")
		for name, data := range r.LocalCAs {
			if err == nil {
				err = add("ca-certificates/"+name, data)
			}
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("pack the recipe: %w", err)
	}
	return &buf, nil
}

// lock takes an exclusive lock on path, waiting (and saying so) while another build holds it.
func lock(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	said := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("build lock: %w", err)
		}
		if !said && log != nil {
			fmt.Fprintf(log, "waiting for another build of the sandbox image (lock %s)\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// lastLines keeps the last max lines written through add.
type lastLines struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *lastLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
