package deploy

import (
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

const sandboxNamespace = "mgx-sandboxes"

// renderKubernetesDriver renders the main setup, `kubectl apply -k deploy/k8s`: sandboxes as pods.
func renderKubernetesDriver(t *testing.T) rendered {
	return renderDir(t, "k8s", "mgx", sandboxNamespace)
}

// TestKubernetesDriverManifests checks the setup that runs sandboxes as pods: everything both setups
// promise holds, sandboxd scales out without a Docker host, its service account may do exactly what the
// driver does in the sandbox namespace, and the sandboxes are fenced in.
func TestKubernetesDriverManifests(t *testing.T) {
	r := renderKubernetesDriver(t)
	checkManifests(t, r)

	ns, ok := r.namespaces[sandboxNamespace]
	require.True(t, ok, "the sandbox namespace")
	require.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"])

	d := r.deployments["sandboxd"]
	pod := d.Spec.Template.Spec
	require.Equal(t, "mgx", d.Namespace)
	require.Greater(t, *d.Spec.Replicas, int32(1), "any replica serves any session")
	require.Equal(t, appsv1.RollingUpdateDeploymentStrategyType, d.Spec.Strategy.Type)
	require.Empty(t, pod.NodeSelector, "no Docker host to pin to")
	for _, v := range pod.Volumes {
		require.Nil(t, v.HostPath, "volume %s: no host path without a Docker host", v.Name)
	}
	env := map[string]string{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e.Value
	}
	require.Equal(t, "kubernetes", env["SANDBOXD_DRIVER"])
	require.Equal(t, sandboxNamespace, env["SANDBOX_K8S_NAMESPACE"])
	require.Equal(t, "7070", env["SANDBOX_K8S_AGENT_PORT"])
	require.Equal(t, "sandboxd", pod.ServiceAccountName)
	require.True(t, *pod.AutomountServiceAccountToken, "sandboxd talks to the API server")
	require.Equal(t, int32(1), r.pdbs["sandboxd"].Spec.MaxUnavailable.IntVal)
	require.Contains(t, r.configMaps["mgx-config"].Data["SANDBOXD_ADDR"], "dns:///", "clients balance over the replicas")

	sa, ok := r.serviceAccounts["sandboxd"]
	require.True(t, ok)
	require.Equal(t, "mgx", sa.Namespace)
	rb := r.roleBindings["sandboxd"]
	require.Equal(t, sandboxNamespace, rb.Namespace)
	require.Equal(t, "Role", rb.RoleRef.Kind, "never cluster-wide")
	require.Len(t, rb.Subjects, 1)
	require.Equal(t, "ServiceAccount", rb.Subjects[0].Kind)
	require.Equal(t, "sandboxd", rb.Subjects[0].Name)
	require.Equal(t, "mgx", rb.Subjects[0].Namespace)
	role := r.roles[rb.RoleRef.Name]
	require.NotNil(t, role)
	require.Equal(t, sandboxNamespace, role.Namespace)
	// What the driver calls (sandboxd/internal/driver/kubernetes), and nothing broader.
	want := map[string][]string{
		"pods":                   {"get", "list", "watch", "create", "delete"},
		"persistentvolumeclaims": {"get", "list", "create", "delete"},
		"secrets":                {"get", "create", "update", "delete"},
	}
	got := map[string][]string{}
	for _, rule := range role.Rules {
		require.Equal(t, []string{""}, rule.APIGroups)
		for _, res := range rule.Resources {
			require.NotContains(t, rule.Verbs, "*")
			got[res] = append(got[res], rule.Verbs...)
		}
	}
	for res, verbs := range want {
		require.ElementsMatch(t, verbs, got[res], res)
	}
	require.Len(t, got, len(want))

	in := r.networkPolicies["sandbox-ingress"]
	require.NotNil(t, in)
	require.Equal(t, sandboxNamespace, in.Namespace)
	require.Empty(t, in.Spec.PodSelector.MatchLabels, "every pod of the namespace")
	require.Len(t, in.Spec.Ingress, 1)
	rule := in.Spec.Ingress[0]
	require.Len(t, rule.From, 1)
	require.Equal(t, "mgx", rule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	require.True(t, subset(rule.From[0].PodSelector.MatchLabels, d.Spec.Template.Labels), "only sandboxd's pods")
	require.Len(t, rule.Ports, 1)
	require.Equal(t, int32(7070), rule.Ports[0].Port.IntVal)

	eg := r.networkPolicies["sandbox-egress"]
	require.NotNil(t, eg)
	require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, eg.Spec.PolicyTypes)
	var blocked []string
	for _, rule := range eg.Spec.Egress {
		for _, to := range rule.To {
			if to.IPBlock != nil {
				blocked = append(blocked, to.IPBlock.Except...)
			}
		}
	}
	for _, cidr := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} {
		require.Contains(t, blocked, cidr, "sandboxes stay off the cluster network and the metadata endpoint")
	}
}
