package productimage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// baseVersion is part of the Debootstrap key: bump it when prepare changes what goes into the root
// filesystem, so cached tarballs made by the old code are not reused.
const baseVersion = "2"

// Debootstrap is a Debian root filesystem made by debootstrap on this machine (root and the
// debootstrap package needed), with apt set up the way Debian's official images have it.
type Debootstrap struct {
	Suite string
	// Mirror is the Debian archive debootstrap and apt use; Security the security archive.
	Mirror, Security string
	// Variant is debootstrap's variant: minbase is the essential packages and apt; the recipe
	// installs the rest with apt, which also brings the security updates debootstrap does not.
	Variant string
}

// Key implements Base.
func (d Debootstrap) Key() string {
	h := sha256.Sum256([]byte(strings.Join([]string{baseVersion, d.Suite, d.Mirror, d.Security, d.Variant}, "\n")))
	return "debian-" + d.Suite + "-" + d.Variant + "-" + hex.EncodeToString(h[:])[:12]
}

// Tarball implements Base. The tarball is kept: the next build on this machine starts from it
// without downloading anything (the recipe's `apt-get upgrade` brings it up to date).
func (d Debootstrap) Tarball(ctx context.Context, dir string, log io.Writer) (string, error) {
	path := filepath.Join(dir, d.Key()+".tar")
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(log, "base: %s (cached)\n", path)
		return path, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("debootstrap needs root (it creates device nodes and files of other owners): " +
			"run `make sandbox-image` as root, or `sudo -E make sandbox-image`")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", errors.New("debootstrap is not installed (apt-get install debootstrap)")
	}
	if err := os.MkdirAll(filepath.Join(dir, "debs"), 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	work, err := os.MkdirTemp(dir, "rootfs-")
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	defer removeTree(work, log)
	rootfs := filepath.Join(work, "rootfs")

	begin := time.Now()
	fmt.Fprintf(log, "base: debootstrap --variant=%s %s from %s\n", d.Variant, d.Suite, d.Mirror)
	logFile := filepath.Join(dir, "debootstrap.log")
	_ = os.Remove(logFile)
	if err := run(ctx, logFile, "debootstrap", "--variant="+d.Variant, "--cache-dir="+filepath.Join(dir, "debs"),
		d.Suite, rootfs, d.Mirror); err != nil {
		return "", fmt.Errorf("debootstrap: %w (log: %s)", err, logFile)
	}
	if err := d.prepare(rootfs); err != nil {
		return "", fmt.Errorf("prepare the root filesystem: %w", err)
	}
	tmp := filepath.Join(work, "rootfs.tar")
	// GNU tar keeps what the image needs and archive/tar would have to be taught: hard links,
	// device nodes, numeric owners, file capabilities (xattrs).
	if err := run(ctx, logFile, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", rootfs, "-cf", tmp, "."); err != nil {
		return "", fmt.Errorf("tar the root filesystem: %w (log: %s)", err, logFile)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	// One base is kept: older ones (another key) would never be read again.
	if old, _ := filepath.Glob(filepath.Join(dir, "debian-*.tar")); len(old) > 0 {
		for _, o := range old {
			if o != path {
				_ = os.Remove(o)
			}
		}
	}
	fmt.Fprintf(log, "base: %s made in %s\n", path, time.Since(begin).Round(time.Second))
	return path, nil
}

// prepare gives the root filesystem what Debian's official images have and debootstrap does not.
func (d Debootstrap) prepare(rootfs string) error {
	files := map[string]string{
		// All three suites, so apt brings point-release and security updates.
		"etc/apt/sources.list.d/debian.sources": fmt.Sprintf(`Types: deb
URIs: %[1]s
Suites: %[3]s %[3]s-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: %[2]s
Suites: %[3]s-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`, d.Mirror, d.Security, d.Suite),
		// Translations are never read in a container; skipping them makes `apt-get update` faster.
		"etc/apt/apt.conf.d/docker-no-languages": "Acquire::Languages \"none\";\n",
		// What Debian's slim images leave out: nobody reads manuals in a sandbox (there is no man),
		// and they are a tenth of the image. Copyright notices stay.
		"etc/dpkg/dpkg.cfg.d/docker-excludes": `path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
`,
		// Maintainer scripts must not try to start services: there is no init in a container.
		"usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "usr/sbin/") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), mode); err != nil {
			return err
		}
	}
	// debootstrap copied this machine's resolver and name; the engine provides both at run time.
	for _, name := range []string{"etc/apt/sources.list", "etc/resolv.conf", "etc/hostname"} {
		if err := os.Remove(filepath.Join(rootfs, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for _, dir := range []string{"var/lib/apt/lists", "var/cache/apt/archives"} {
		entries, _ := os.ReadDir(filepath.Join(rootfs, dir))
		for _, e := range entries {
			if !e.IsDir() {
				_ = os.Remove(filepath.Join(rootfs, dir, e.Name()))
			}
		}
	}
	return nil
}

// run runs a command with its output appended to logFile. On cancellation it gets SIGTERM first:
// debootstrap unmounts what it mounted in the target (/proc, /sys) from its exit trap.
func run(ctx context.Context, logFile, name string, args ...string) error {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n$ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w; last lines:\n%s", name, err, tailFile(logFile, 20))
	}
	return nil
}

// removeTree removes a debootstrap work directory, first detaching anything still mounted below it
// (a killed debootstrap leaves /proc and /sys mounted in the target): removing files through such a
// mount would reach the host's.
func removeTree(dir string, log io.Writer) {
	mounts, err := mountsUnder(dir)
	if err != nil {
		fmt.Fprintf(log, "warning: leaving %s in place: %v\n", dir, err)
		return
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
			fmt.Fprintf(log, "warning: leaving %s in place: unmount %s: %v\n", dir, mounts[i], err)
			return
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(log, "warning: %v\n", err)
	}
}

// mountsUnder lists the mount points below dir, outermost first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		if mp := unescapeMountPath(fields[4]); strings.HasPrefix(mp, prefix) {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
