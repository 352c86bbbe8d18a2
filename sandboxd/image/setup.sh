#!/bin/sh
# The recipe of the product sandbox image (mgx-sandbox:latest), shared by its two builds:
#
#   docker build -t mgx-sandbox:latest sandboxd/image   FROM node:20-bookworm (needs an image registry)
#   make sandbox-image                                  a debootstrap of Debian bookworm, no registry;
#                                                       node 18 and npm come from Debian
#
# It runs once, as root, inside the image being built, with apt-packages.txt and npm-packages.txt
# beside it. The image's configuration (ENV, USER, WORKDIR, CMD) is not set here: the Dockerfile
# declares it, and sandboxd/image/recipe.go gives the same to the registry-free build.
#
# MGX_BUILD_CACHE, when set, is a directory that outlives the build (a host directory mounted by
# `make sandbox-image`): apt archives and the npm cache are kept there instead of in the image, so the
# next build on this machine downloads only what changed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${MGX_BUILD_CACHE:-}
export DEBIAN_FRONTEND=noninteractive
step() { printf '== %s\n' "$*"; }
# The lists' comments and blank lines are not packages.
list() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/$1"; }

# dpkg syncs every file it unpacks; a build that fails halfway is thrown away whole, so that
# safety buys nothing here and costs minutes on a busy disk.
apt_opts="-o Dpkg::Options::=--force-unsafe-io"
if [ -n "$cache" ]; then
	mkdir -p "$cache/apt/partial"
	apt_opts="$apt_opts -o Dir::Cache::Archives=$cache/apt"
	export npm_config_cache="$cache/npm"
fi

packages=$(list apt-packages.txt)
if ! command -v node >/dev/null; then
	# No node in the base (the debootstrap build): Debian's own, node 18 on bookworm.
	packages="$packages nodejs npm"
fi

step "apt: update and upgrade"
apt-get -q update
# shellcheck disable=SC2086 # apt_opts are several words
apt-get -q -y $apt_opts upgrade
step "apt: install $(echo "$packages" | wc -w) packages"
# shellcheck disable=SC2086
apt-get -q -y --no-install-recommends $apt_opts install $packages

if ls "$here"/ca-certificates/*.crt >/dev/null 2>&1; then
	# Certificate authorities the build machine trusts besides Mozilla's (`make sandbox-image` copies
	# them here): behind a TLS-inspecting proxy, nothing reaches an HTTPS registry without them.
	step "trust $(ls "$here"/ca-certificates/*.crt | wc -l) local certificate authorities of the build machine"
	mkdir -p /usr/local/share/ca-certificates/mgx-build-host
	cp "$here"/ca-certificates/*.crt /usr/local/share/ca-certificates/mgx-build-host/
	update-ca-certificates
fi
# As the image's ENV says, for this script's own npm and checks.
export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt

step "user node (1000:1000) and /workspace"
# node:*-bookworm has this user already; the sandbox runs as 1000:1000 (SANDBOX_USER) either way.
if ! getent passwd node >/dev/null; then
	groupadd --gid 1000 node
	useradd --uid 1000 --gid node --shell /bin/bash --create-home node
fi
mkdir -p /workspace
chown node:node /workspace
# `npm install --global` works for the user, into ~/.local like `pip install`: /usr/local is root's.
# The login shell commands run in puts ~/.local/bin on PATH (~/.profile does, when it exists).
home=$(getent passwd node | cut -d: -f6)
install -d -o node -g node "$home/.local" "$home/.local/bin"
printf 'prefix=%s/.local\n' "$home" >"$home/.npmrc"
chown node:node "$home/.npmrc"

step "npm: global tools"
# node:*-bookworm installs yarn outside npm (/opt/yarn-*); the pinned one from npm-packages.txt
# replaces it, so both builds have the same yarn.
rm -rf /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg
npm install --global --no-fund --no-audit --no-update-notifier $(list npm-packages.txt)
# npm 9 (Debian's) installs the native builds of an optional dependency for every libc; Debian is
# glibc, so those that declare "libc": ["musl"] can never load (next's SWC alone is 140 MB).
NPM_ROOT=$(npm root --global) node <<'JS'
const fs = require("fs"), path = require("path");
const root = process.env.NPM_ROOT;
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const p = path.join(dir, e.name);
    if (e.name.startsWith("@")) { walk(p); continue; }
    let pkg;
    try { pkg = JSON.parse(fs.readFileSync(path.join(p, "package.json"), "utf8")); } catch { continue; }
    if (Array.isArray(pkg.libc) && pkg.libc.length > 0 && !pkg.libc.includes("glibc")) {
      fs.rmSync(p, { recursive: true });
      console.log("   dropped " + path.relative(root, p) + " (" + pkg.libc.join(",") + " only)");
      continue;
    }
    if (fs.existsSync(path.join(p, "node_modules"))) walk(path.join(p, "node_modules"));
  }
})(root);
JS

step "python: pip installs into the user's site"
# Debian marks its python as externally managed (PEP 668), so a plain `pip install` refuses to run.
# In a sandbox that is the wrong answer: the user is not root, so pip installs into ~/.local and
# never touches Debian's packages. Virtual environments work as usual.
cat >/etc/pip.conf <<'PIP'
[global]
break-system-packages = true
disable-pip-version-check = true
PIP

step "check: every tool runs"
# Run as the sandbox user, in a throwaway home, with the image's telemetry settings: a tool that
# does not start on this node fails the build instead of a user's first command.
check_home=$(mktemp -d)
chown node:node "$check_home"
for cmd in "node --version" "npm --version" "pnpm --version" "yarn --version" "vite --version" \
	"next --version" "pm2 --version" "turbo --version" "python3 --version" "pip --version" \
	"python3 -c 'import numpy, pandas, matplotlib'" "git --version" "gcc --version" "make --version" \
	"inotifywait --help" "watchman --version" "curl --version"; do
	if ! out=$(su node -s /bin/sh -c "cd /workspace && HOME=$check_home NEXT_TELEMETRY_DISABLED=1 TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 $cmd" </dev/null 2>&1); then
		# inotifywait --help exits 1 by design; anything else failing is a broken tool.
		case "$cmd" in inotifywait*) ;; *)
			printf '%s\n' "$out"
			echo "setup.sh: '$cmd' failed" >&2
			exit 1
			;;
		esac
	fi
	# The first line with a version in it (pm2 prints a banner first).
	printf '   %-45s %s\n' "$cmd" "$(printf '%s\n' "$out" | grep -m 1 -E '[0-9]+\.[0-9]+' || true)"
done
rm -rf "$check_home"

step "clean up"
if [ -z "$cache" ]; then
	apt-get clean
	npm cache clean --force 2>/dev/null || true
else
	# Keep the cache to what the archive still has: superseded versions go.
	# shellcheck disable=SC2086
	apt-get -q $apt_opts autoclean
fi
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /root/.npm /root/.cache /tmp/* /var/tmp/*
