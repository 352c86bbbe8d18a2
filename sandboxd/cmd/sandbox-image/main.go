// Command sandbox-image builds the development sandbox image
// (mgx-sandbox-dev:latest: static busybox, non-root user, /workspace) through
// the Docker API, without any registry:
//
//	go run ./sandboxd/cmd/sandbox-image --dev
//
// then run sandboxd with SANDBOX_IMAGE=mgx-sandbox-dev:latest. The product
// image is sandboxd/image/Dockerfile (needs registry access to build).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/docker/docker/client"

	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
)

func main() {
	dev := flag.Bool("dev", false, "build the development image (static busybox)")
	ref := flag.String("tag", devimage.DefaultRef, "image reference to tag")
	busybox := flag.String("busybox", devimage.DefaultBusybox, "static busybox binary")
	ifMissing := flag.Bool("if-missing", false, "do nothing when the image exists")
	flag.Parse()
	if !*dev {
		fmt.Fprintln(os.Stderr, "sandbox-image: only --dev is supported here; build the product image with\n  docker build -t mgx-sandbox:latest sandboxd/image")
		os.Exit(2)
	}
	if err := run(*ref, *busybox, *ifMissing); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-image:", err)
		os.Exit(1)
	}
	fmt.Println(*ref)
}

func run(ref, busybox string, ifMissing bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	build := devimage.Build
	if ifMissing {
		build = devimage.Ensure
	}
	return build(ctx, cli, ref, busybox)
}
