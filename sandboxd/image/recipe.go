// Package image is the recipe of the product sandbox image, mgx-sandbox:latest: setup.sh with the
// package lists it reads, and the image configuration. Two builds share it: the Dockerfile in this
// directory (node:20-bookworm, needs an image registry) and `make sandbox-image`
// (sandboxd/internal/productimage: Debian bookworm from debootstrap, no registry). Everything that
// decides what is in the image lives here, so a change to it is a change to RecipeFiles or Config,
// and either one changes the hash the registry-free build caches by.
package image

import (
	"embed"
	"io/fs"
	"strings"
)

// DefaultRef is the tag sandboxd uses by default (SANDBOX_IMAGE).
const DefaultRef = "mgx-sandbox:latest"

// User is the image's non-root user ("node", uid and gid 1000: what node:*-bookworm has and what
// SANDBOX_USER defaults to).
const User = "node"

// files are the recipe proper. The Dockerfile is not among them: the registry-free build does not
// read it, so editing its comments must not force a rebuild.
//
//go:embed setup.sh apt-packages.txt npm-packages.txt
var files embed.FS

// RecipeFiles returns setup.sh and the lists it reads.
func RecipeFiles() fs.FS { return files }

// Config is the image configuration as Dockerfile instructions, in the form the Docker API's import
// and commit take. The Dockerfile declares the same (recipe_test.go compares them).
var Config = []string{
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"ENV HOME=/home/node",
	// Python and the tools print and read UTF-8 without a locale package.
	"ENV LANG=C.UTF-8",
	// node and Python's requests bring their own CA lists; pointed at the system store, they
	// trust what setup.sh added to it (a TLS-inspecting proxy's CA on the build machine).
	"ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	"ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
	// File watchers of dev servers (Vite, webpack, Next) poll: inotify events do not always cross
	// the container boundary on every storage driver and runtime (gVisor); polling always works.
	"ENV CHOKIDAR_USEPOLLING=1",
	"ENV WATCHPACK_POLLING=true",
	"ENV NEXT_TELEMETRY_DISABLED=1",
	"ENV TURBO_TELEMETRY_DISABLED=1",
	"WORKDIR /workspace",
	"USER " + User,
	// Stays resident when started without sandboxd (sandboxd's agent is the entrypoint otherwise).
	`CMD ["sleep", "infinity"]`,
}

// Packages returns the entries of one of the lists (apt-packages.txt, npm-packages.txt) as setup.sh
// reads them: comments and blank lines dropped.
func Packages(list string) ([]string, error) {
	b, err := files.ReadFile(list)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		out = append(out, strings.Fields(line)...)
	}
	return out, nil
}
