package app_test

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/kubetest"
)

// TestKubernetes runs sandboxd as it runs in a cluster (SANDBOXD_DRIVER=kubernetes, from its
// configuration alone) against the real control plane of package kubetest: the same conformance
// every driver passes, then two replicas of one deployment serving one session — launches, execs and
// previews alternating between them, each resolving the session to its pod on its own.
func TestKubernetes(t *testing.T) {
	c := kubetest.Start(t)
	ns := c.Namespace(t, "app")
	agents := c.RunAgents(t, ns, stacktest.Bin(t, "sandbox-agent"))
	defer agents.Stop()
	redisURL := stacktest.Redis(t)
	vars := baseEnv(t, "kubernetes", redisURL)
	for k, v := range map[string]string{
		"SANDBOX_K8S_KUBECONFIG": c.Kubeconfig, "SANDBOX_K8S_NAMESPACE": ns,
		"SANDBOX_K8S_AGENT_PORT": strconv.Itoa(c.AgentPort), "SANDBOX_K8S_PULL_POLICY": string(c.PullPolicy),
		"SANDBOX_K8S_STORAGE_CLASS": c.StorageClass, "SANDBOX_K8S_AGENT_IMAGE": c.AgentImage, "SANDBOX_IMAGE": c.SandboxImage,
		"SANDBOX_K8S_WORKSPACE_SIZE": "1Gi", "SANDBOX_K8S_META_SIZE": "256Mi",
		"SANDBOX_USER": "1000:1000", "SANDBOX_CPU": "0.5",
		// A pod takes seconds to be scheduled and run on the simulated node.
		"SANDBOX_CREATE_TIMEOUT": "120", "SANDBOX_OUTPUT_LIMIT": "65536",
	} {
		vars[k] = v
	}
	a := startWith(t, vars)

	t.Run("conformance", func(t *testing.T) { conformance(t, a, "kubernetes") })

	t.Run("two replicas serve one session", func(t *testing.T) {
		bVars := map[string]string{}
		for k, v := range vars {
			bVars[k] = v
		}
		bVars["SANDBOXD_RUN_DIR"] = stacktest.RunDir(t)
		b := startWith(t, bVars)
		replicas := []*env{a, b}
		ctx := as(t.Context(), "user-k")
		sid := newSession()
		_, err := b.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.NoError(t, err, "%s", agents)
		for i := range 4 {
			res, err := replicas[i%2].sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo turn >> turns && wc -l < turns"})
			require.NoError(t, err, "exec %d on replica %d", i, i%2)
			require.Equal(t, strconv.Itoa(i+1), strings.TrimSpace(res.GetStdout()), "exec %d on replica %d", i, i%2)
		}
		installWsecho(ctx, t, a, sid)
		port := 20000 + rand.IntN(2000)
		_, err = b.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: "web", Command: fmt.Sprintf("exec ./wsecho -addr 127.0.0.1:%d", port)})
		require.NoError(t, err)
		var purl string
		eventually(t, 20*time.Second, func() bool {
			pv, err := a.sb.GetPreview(ctx, &sandboxdv1.GetPreviewRequest{SessionId: sid})
			if err != nil || !pv.GetAvailable() {
				return false
			}
			for _, pp := range pv.GetPreviews() {
				if pp.GetContainerPort() == int32(port) {
					purl = pp.GetUrl()
				}
			}
			return purl != ""
		}, "no preview")
		u, err := url.Parse(purl)
		require.NoError(t, err)
		// The link one replica handed out opens through either replica's preview listener.
		for _, r := range replicas {
			previewTest(t, r.app.PreviewAddr(), u)
		}
		_, err = a.sb.DestroySandbox(ctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid})
		require.NoError(t, err)
	})
}
