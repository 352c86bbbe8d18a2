// Package productimage builds the product sandbox image (mgx-sandbox:latest) on a machine without
// any image registry, from the recipe in sandboxd/image:
//
//  1. a root filesystem of Debian bookworm made by debootstrap, kept as a tarball in the cache
//     directory and imported through the Docker API (ImageImport) as a base;
//  2. the recipe's setup.sh run as root in a container of that base, as a Dockerfile's RUN would,
//     with the apt archives and the npm cache on a host directory so they outlive the build;
//  3. that container committed with the recipe's configuration (ENV, WORKDIR, USER, CMD) and a
//     label holding the recipe's hash.
//
// The hash covers everything that decides the image's content (base, recipe files, configuration,
// this builder's version), so Ensure is a no-op in seconds while the recipe is unchanged, and a
// changed package list or pin rebuilds.
package productimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker/docker/client"

	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
)

// LabelRecipe is the image label holding the hash of the recipe it was built from.
const LabelRecipe = "org.mgx.sandbox.recipe"

// LabelBase names the base the image was built on.
const LabelBase = "org.mgx.sandbox.base"

// LabelLocalCAs holds the hash of the build machine's certificate authorities the image trusts
// (Recipe.LocalCAs). It is apart from the recipe hash: the recipe is the same on every machine,
// and sandboxd compares only that.
const LabelLocalCAs = "org.mgx.sandbox.local-cas"

// DefaultCADir is where Debian keeps locally added certificate authorities (update-ca-certificates).
const DefaultCADir = "/usr/local/share/ca-certificates"

// builderVersion is part of every recipe hash. Bump it when a change to this package changes the
// images it builds (not for refactors), so images built by the old code are rebuilt.
const builderVersion = "1"

// Debian is the base of the product image. The mirror is the one apt uses on these machines
// (/etc/apt/sources.list.d/debian.sources).
var Debian = Debootstrap{
	Suite:    "bookworm",
	Mirror:   "http://deb.debian.org/debian",
	Security: "http://deb.debian.org/debian-security",
	Variant:  "minbase",
}

// Options configure the product builder.
type Options struct {
	// CacheDir holds what outlives a build (see DefaultCacheDir).
	CacheDir string
	// CADir holds the certificate authorities this machine trusts besides the Mozilla set
	// (DefaultCADir); the image trusts them too. Where egress goes through a TLS-inspecting proxy
	// (as on these machines, for the npm registry) nothing in a sandbox reaches an HTTPS registry
	// without them. Empty adds none.
	CADir string
	// Log receives progress lines.
	Log io.Writer
}

// Product returns the builder of mgx-sandbox:latest.
func Product(cli *client.Client, o Options) (*Builder, error) {
	cas, err := LocalCAs(o.CADir)
	if err != nil {
		return nil, err
	}
	return &Builder{
		Client:   cli,
		Ref:      sandboximage.DefaultRef,
		Base:     Debian,
		Recipe:   Recipe{Files: sandboximage.RecipeFiles(), Config: sandboximage.Config, LocalCAs: cas},
		CacheDir: o.CacheDir,
		Log:      o.Log,
	}, nil
}

// ProductHash is the recipe hash of the product image, what its LabelRecipe must say for sandboxd
// to consider it current.
func ProductHash() (string, error) {
	b, err := Product(nil, Options{})
	if err != nil {
		return "", err
	}
	return b.Hash()
}

// LocalCAs reads the certificates below dir the way update-ca-certificates does (files named
// *.crt), keyed by their path below dir. A missing dir has none.
func LocalCAs(dir string) (map[string][]byte, error) {
	cas := map[string][]byte{}
	if dir == "" {
		return cas, nil
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".crt") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		cas[strings.ReplaceAll(rel, string(filepath.Separator), "-")] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local certificate authorities: %w", err)
	}
	return cas, nil
}

// DefaultCacheDir is $XDG_CACHE_HOME/mgx/sandbox-image (~/.cache/mgx/sandbox-image): outside every
// work tree, so clones and worktrees on one machine share the downloads.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set XDG_CACHE_HOME or HOME): %w", err)
	}
	return filepath.Join(dir, "mgx", "sandbox-image"), nil
}

// Recipe is what runs on the base: Files (setup.sh and what it reads) are copied into the build
// container, and Config (Dockerfile instructions: ENV, WORKDIR, USER, CMD, LABEL) is applied on commit.
type Recipe struct {
	Files  fs.FS
	Config []string
	// LocalCAs are certificates (file name → PEM) copied into ca-certificates/ beside setup.sh,
	// which makes the image trust them.
	LocalCAs map[string][]byte
}

// localCAsHash identifies Recipe.LocalCAs ("none" when empty).
func (r Recipe) localCAsHash() string {
	if len(r.LocalCAs) == 0 {
		return "none"
	}
	names := make([]string, 0, len(r.LocalCAs))
	for name := range r.LocalCAs {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%d:%s\n%d:%s\n", len(name), name, len(r.LocalCAs[name]), r.LocalCAs[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Hash identifies the image the builder produces, apart from the local CAs it trusts.
func (b *Builder) Hash() (string, error) {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s\n", len(s), s) }
	field("mgx-sandbox-image/" + builderVersion)
	field(b.Base.Key())
	var names []string
	err := fs.WalkDir(b.Recipe.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, path)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("recipe files: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := fs.ReadFile(b.Recipe.Files, name)
		if err != nil {
			return "", fmt.Errorf("recipe files: %w", err)
		}
		field(name)
		field(string(data))
	}
	for _, c := range b.Recipe.Config {
		field(c)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Ready returns the product image's reference when the engine has one to run sandboxes from: built
// by `make sandbox-image` from this recipe (and this machine's CAs), or by `docker build` from the
// Dockerfile. Otherwise the error says what to run. Tests that need node or python in a sandbox
// start with it.
func Ready(ctx context.Context, cli *client.Client) (string, error) {
	b, err := Product(cli, Options{CADir: DefaultCADir})
	if err != nil {
		return "", err
	}
	st, err := b.State(ctx)
	if err != nil {
		return "", err
	}
	switch st {
	case Current, Foreign:
		return b.Ref, nil
	case Stale:
		return "", fmt.Errorf("%s was built from another recipe; rebuild it with `make sandbox-image`", b.Ref)
	}
	return "", fmt.Errorf("%s is not built; build it with `make sandbox-image` (.ci/run does before `make test`)", b.Ref)
}
