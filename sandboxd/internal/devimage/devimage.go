// Package devimage builds the small sandbox image used by most tests (it
// builds in a second) and by sandboxd, loudly, as the fallback while the
// product image (`make sandbox-image`, sandboxd/internal/productimage) is not
// built on the machine.
//
// The image is FROM scratch in spirit: a static busybox with its applet
// links, an /etc/passwd with the non-root user "sandbox" (uid 1000), a
// world-writable /tmp and /workspace owned by the user. It is assembled as
// a tar stream and imported through the Docker API (docker import keeps the
// tar's owners and modes), so no registry and no build context are needed.
package devimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// DefaultRef is the tag the dev image gets.
const DefaultRef = "mgx-sandbox-dev:latest"

// DefaultBusybox is Debian's static busybox (package busybox-static).
const DefaultBusybox = "/bin/busybox"

// Build imports the dev image as ref from the static busybox at busybox.
func Build(ctx context.Context, cli *client.Client, ref, busybox string) error {
	rootfs, err := RootFS(busybox)
	if err != nil {
		return err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, ref, image.ImportOptions{
		Message: "mgx sandbox dev image (static busybox)",
		Changes: []string{
			"USER 1000:1000",
			"WORKDIR /workspace",
			"ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/workspace CHOKIDAR_USEPOLLING=1 WATCHPACK_POLLING=true",
			`CMD ["/bin/sh"]`,
		},
	})
	if err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// Ensure builds the image unless ref already exists.
func Ensure(ctx context.Context, cli *client.Client, ref, busybox string) error {
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return nil
	}
	return Build(ctx, cli, ref, busybox)
}

// RootFS returns the image's root filesystem as a tar archive.
func RootFS(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w (install busybox-static)", err)
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "etc", "root", "dev", "proc", "sys", "var", "run"} {
		dir(d, 0o755, 0)
	}
	dir("tmp", 0o1777, 0)
	dir("var/tmp", 0o1777, 0)
	dir("workspace", 0o755, 1000)
	file("bin/busybox", 0o755, bin)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" || strings.Contains(applet, "..") {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: applet, Linkname: "/bin/busybox", Mode: 0o777, ModTime: now})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"))
	file("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n"))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
