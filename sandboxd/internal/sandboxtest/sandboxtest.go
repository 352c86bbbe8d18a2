// Package sandboxtest is what sandboxd's Docker tests need on top of the harness (pkg/stacktest,
// which provides the binaries, Redis and the engine check): a client of the engine with the dev
// sandbox image present, built locally when missing (no registry here).
package sandboxtest

import (
	"context"
	"sync"
	"testing"

	"github.com/docker/docker/client"

	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/devimage"
)

// Image is the image the tests run sandboxes from.
const Image = devimage.DefaultRef

var (
	imageOnce sync.Once
	imageErr  error
)

// Docker returns a client of the local engine with the dev image present, or skips the test (fails
// it under CI=true) when no engine answers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	stacktest.Docker(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	imageOnce.Do(func() {
		imageErr = devimage.Ensure(context.Background(), cli, Image, devimage.DefaultBusybox)
	})
	if imageErr != nil {
		stacktest.Unavailable(t, imageErr)
	}
	return cli
}
