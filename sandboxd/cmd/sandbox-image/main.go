// Command sandbox-image builds the sandbox images through the Docker API, without any registry.
//
//	sandbox-image                 the product image mgx-sandbox:latest (make sandbox-image): Debian
//	                              bookworm from debootstrap + the recipe in sandboxd/image; a no-op
//	                              in seconds when the image already has this recipe's hash
//	sandbox-image --force         rebuild it anyway (replaces a `docker build` image too)
//	sandbox-image --check         say whether it is current and how to build it; exit 1 if not
//	sandbox-image --dev           the development image mgx-sandbox-dev:latest (static busybox)
//
// The product build needs root and debootstrap the first time on a machine (the base tarball is
// cached); downloads are kept in --cache-dir for the next build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	sandboximage "github.com/mgx-ai/mgx/sandboxd/image"
	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
	"github.com/mgx-ai/mgx/sandboxd/internal/productimage"
)

type options struct {
	dev, ifMissing, force, check  bool
	ref, busybox, cacheDir, caDir string
}

func main() {
	var o options
	flag.BoolVar(&o.dev, "dev", false, "build the development image (static busybox) instead of the product image")
	flag.StringVar(&o.ref, "tag", "", "image reference to tag (default "+sandboximage.DefaultRef+", or "+devimage.DefaultRef+" with --dev)")
	flag.BoolVar(&o.force, "force", false, "rebuild the product image even when it is current")
	flag.BoolVar(&o.check, "check", false, "only report whether the product image is current (exit 1 when it is not)")
	flag.StringVar(&o.cacheDir, "cache-dir", "", "downloads kept between builds (default $XDG_CACHE_HOME/mgx/sandbox-image)")
	flag.StringVar(&o.caDir, "ca-dir", productimage.DefaultCADir, "certificate authorities of this machine the image trusts too (empty: none)")
	flag.StringVar(&o.busybox, "busybox", devimage.DefaultBusybox, "static busybox binary (--dev)")
	flag.BoolVar(&o.ifMissing, "if-missing", false, "do nothing when the image exists (--dev)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, o options) int {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		// `make run` calls --check before starting: an engine that does not answer must not stall it.
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Ping(pingCtx)
		cancel()
	}
	if err != nil {
		if o.check {
			// No engine: sandboxd will use its local driver, which needs no image.
			return 0
		}
		fmt.Fprintln(os.Stderr, "sandbox-image: no Docker engine answers:", err)
		return 1
	}
	defer cli.Close()

	if o.dev {
		if o.ref == "" {
			o.ref = devimage.DefaultRef
		}
		build := devimage.Build
		if o.ifMissing {
			build = devimage.Ensure
		}
		if err := build(ctx, cli, o.ref, o.busybox); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox-image:", err)
			return 1
		}
		fmt.Println(o.ref)
		return 0
	}

	if o.cacheDir == "" {
		if o.cacheDir, err = productimage.DefaultCacheDir(); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox-image:", err)
			return 1
		}
	}
	b, err := productimage.Product(cli, productimage.Options{CacheDir: o.cacheDir, CADir: o.caDir, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-image:", err)
		return 1
	}
	if o.ref != "" {
		b.Ref = o.ref
	}
	if o.check {
		return check(ctx, b, os.Stderr)
	}
	ensure := b.Ensure
	if o.force {
		ensure = b.Build
	}
	res, err := ensure(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "sandbox-image: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-image:", err)
		return 1
	}
	switch {
	case res.Built:
	case res.State == productimage.Foreign:
		fmt.Fprintf(os.Stderr, "%s exists and was not built by this tool (docker build?); kept. --force replaces it.\n", b.Ref)
	default:
		fmt.Fprintf(os.Stderr, "%s is current (recipe %s)\n", b.Ref, res.Hash[:12])
	}
	fmt.Println(b.Ref)
	return 0
}

// check prints, for `make run`, what sandboxd will do about the image and how to build it. An
// image sandboxd is not configured to use (SANDBOX_IMAGE names another) is none of its business.
func check(ctx context.Context, b *productimage.Builder, w io.Writer) int {
	if img := os.Getenv("SANDBOX_IMAGE"); img != "" && img != b.Ref {
		return 0
	}
	st, err := b.State(ctx)
	if err != nil {
		fmt.Fprintln(w, "sandbox-image:", err)
		return 1
	}
	switch st {
	case productimage.Current, productimage.Foreign:
		return 0
	case productimage.Stale:
		fmt.Fprintf(w, "NOTE: %s was built from an older recipe (sandboxd/image changed). Rebuild it (a few minutes):\n"+
			"  make sandbox-image\n", b.Ref)
	default:
		fmt.Fprintf(w, "NOTE: the product sandbox image %s is not built: sandboxes will run the minimal busybox image "+
			"(no node, no python, no git).\nBuild it once, without any registry (about 4 minutes; needs root and debootstrap):\n"+
			"  make sandbox-image            or start with:  make run SANDBOX_IMAGE_BUILD=1\n", b.Ref)
	}
	return 1
}
