package kubetest

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// The real-cluster mode's wiring (no real cluster is reachable here): given a kubeconfig, here the
// simulated cluster's own, it talks to that API server, takes its settings from MGX_K8S_TEST_*, makes
// namespaces as the suite needs them, and starts no stand-in agents (kubelets run them).
func TestRealModeUsesTheKubeconfig(t *testing.T) {
	sim := Start(t)
	t.Setenv("MGX_K8S_TEST_SANDBOX_IMAGE", "registry.example/mgx-sandbox:1")
	t.Setenv("MGX_K8S_TEST_PULL_POLICY", "Always")
	t.Setenv("MGX_K8S_TEST_STORAGE_CLASS", "fast")
	c := startReal(t, sim.Kubeconfig)
	require.True(t, c.Real)
	require.Equal(t, "registry.example/mgx-sandbox:1", c.SandboxImage)
	require.Equal(t, "mgx/sandboxd:latest", c.AgentImage)
	require.Equal(t, corev1.PullAlways, c.PullPolicy)
	require.Equal(t, "fast", c.StorageClass)
	require.Equal(t, 7070, c.AgentPort)
	ns := c.Namespace(t, "real")
	got, err := sim.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	require.NoError(t, err, "the namespace is made on the kubeconfig's cluster")
	require.Equal(t, "restricted", got.Labels["pod-security.kubernetes.io/enforce"])
	agents := c.RunAgents(t, ns, "/nonexistent/sandbox-agent")
	defer agents.Stop()
	require.Zero(t, agents.Started(), "no stand-in on a real cluster")
	require.Contains(t, agents.String(), "kubectl -n "+ns+" logs")
}
