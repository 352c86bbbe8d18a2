package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is the kustomization, built the way `kubectl apply -k` would, and strictly decoded into the
// Kubernetes API's own Go types: an unknown or misspelt field is an error, not a silently dropped line.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	// Those of the Kubernetes driver's setup (deploy/k8s) only.
	namespaces      map[string]*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	roles           map[string]*rbacv1.Role
	roleBindings    map[string]*rbacv1.RoleBinding
	networkPolicies map[string]*networkingv1.NetworkPolicy
}

// renderDockerHost renders the alternative setup, every sandbox on one Docker host.
func renderDockerHost(t *testing.T) rendered { return renderDir(t, "k8s-docker-host", "mgx") }

// renderDir builds the kustomization in dir; every namespaced resource must be in one of namespaces.
func renderDir(t *testing.T, dir string, namespaces ...string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build deploy/%s", dir)
	out, err := resMap.AsYaml()
	require.NoError(t, err)

	r := rendered{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		namespaces: map[string]*corev1.Namespace{}, serviceAccounts: map[string]*corev1.ServiceAccount{},
		roles: map[string]*rbacv1.Role{}, roleBindings: map[string]*rbacv1.RoleBinding{},
		networkPolicies: map[string]*networkingv1.NetworkPolicy{},
	}
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		require.NoError(t, yaml.Unmarshal(doc, &meta))
		if meta.Kind != "Namespace" {
			require.Contains(t, namespaces, meta.Metadata.Namespace, "%s/%s", meta.Kind, meta.Metadata.Name)
		}
		strict := func(into any) {
			require.NoError(t, yaml.UnmarshalStrict(doc, into), "%s/%s", meta.Kind, meta.Metadata.Name)
		}
		switch meta.Kind {
		case "Deployment":
			d := &appsv1.Deployment{}
			strict(d)
			r.deployments[d.Name] = d
		case "Service":
			s := &corev1.Service{}
			strict(s)
			r.services[s.Name] = s
		case "HorizontalPodAutoscaler":
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			strict(h)
			r.hpas[h.Name] = h
		case "PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			strict(p)
			r.pdbs[p.Name] = p
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			strict(c)
			r.configMaps[c.Name] = c
		case "Secret":
			s := &corev1.Secret{}
			strict(s)
			r.secrets[s.Name] = s
		case "Namespace":
			n := &corev1.Namespace{}
			strict(n)
			r.namespaces[n.Name] = n
		case "ServiceAccount":
			s := &corev1.ServiceAccount{}
			strict(s)
			r.serviceAccounts[s.Name] = s
		case "Role":
			x := &rbacv1.Role{}
			strict(x)
			r.roles[x.Name] = x
		case "RoleBinding":
			x := &rbacv1.RoleBinding{}
			strict(x)
			r.roleBindings[x.Name] = x
		case "NetworkPolicy":
			x := &networkingv1.NetworkPolicy{}
			strict(x)
			r.networkPolicies[x.Name] = x
		default:
			t.Fatalf("unexpected kind %q in the rendered manifests", meta.Kind)
		}
	}
	return r
}

// TestDockerHostManifests checks the alternative to the Kubernetes driver: everything both setups
// promise, and sandboxd as the single manager of one labelled Docker host, with no access to the API
// server (it has nothing to do there).
func TestDockerHostManifests(t *testing.T) {
	r := renderDockerHost(t)
	checkManifests(t, r)

	require.Empty(t, r.serviceAccounts)
	require.Empty(t, r.roles)
	require.Empty(t, r.roleBindings)
	require.Empty(t, r.networkPolicies, "no sandbox pods to fence")
	require.Equal(t, []string{"mgx"}, keys(r.namespaces))

	d := r.deployments["sandboxd"]
	pod := d.Spec.Template.Spec
	require.Equal(t, int32(1), *d.Spec.Replicas, "one manager per engine")
	require.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type,
		"never two managers reconciling one engine during a rollout")
	require.Equal(t, map[string]string{"mgx.dev/sandbox-host": "true"}, pod.NodeSelector)
	require.False(t, *pod.AutomountServiceAccountToken)
	require.Empty(t, pod.ServiceAccountName)
	require.Equal(t, int32(0), r.pdbs["sandboxd"].Spec.MaxUnavailable.IntVal, "evictions wait for an operator")

	c := pod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	require.Equal(t, "docker", env["SANDBOXD_DRIVER"])
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	engine := volumes[mounts["/var/run/docker.sock"]].HostPath
	require.NotNil(t, engine, "sandboxd drives the host's engine")
	require.Equal(t, "/var/run/docker.sock", engine.Path)
	require.Equal(t, corev1.HostPathSocket, *engine.Type)
	runDir := env["SANDBOXD_RUN_DIR"]
	require.NotEmpty(t, runDir)
	run := volumes[mounts[runDir]].HostPath
	require.NotNil(t, run, "the run directory is on the host")
	require.Equal(t, runDir, run.Path, "run dir must have the same path on the node and in the pod")
}

// TestKubernetesBaseIsNoSetup keeps what both setups share from being a deployable setup by itself: its
// sandboxd names no driver (so it would fall back to running sandboxes unisolated in its own pod), and
// it stays safe only because its run directory has no volume, which the API server refuses.
func TestKubernetesBaseIsNoSetup(t *testing.T) {
	r := renderDir(t, "k8s/base", "mgx")
	pod := r.deployments["sandboxd"].Spec.Template.Spec
	for _, e := range pod.Containers[0].Env {
		require.NotEqual(t, "SANDBOXD_DRIVER", e.Name, "the driver is the setup's choice")
	}
	require.NotEmpty(t, pod.Containers[0].VolumeMounts)
	for _, m := range pod.Containers[0].VolumeMounts {
		require.False(t, slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }),
			"mount %s has a volume in the base: `kubectl apply -k deploy/k8s/base` would start an unisolated sandboxd", m.Name)
	}
}

func checkManifests(t *testing.T, r rendered) {
	t.Helper()
	require.ElementsMatch(t, []string{"gateway", "agentd", "sandboxd"}, keys(r.deployments))

	for name, d := range r.deployments {
		t.Run(name, func(t *testing.T) {
			pod := d.Spec.Template.Spec
			require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
			require.True(t, *pod.SecurityContext.RunAsNonRoot, "runs as non-root")
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			require.NotNil(t, c.LivenessProbe, "liveness probe")
			require.NotNil(t, c.ReadinessProbe, "readiness probe")
			require.False(t, c.Resources.Requests.Cpu().IsZero(), "cpu request")
			require.False(t, c.Resources.Limits.Memory().IsZero(), "memory limit")
			require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
			require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
			require.Equal(t, "mgx/"+name+":latest", c.Image)
			for _, m := range c.VolumeMounts {
				require.True(t, slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }),
					"mount %s has a volume", m.Name)
			}

			// Probes point at a declared container port, by name or number.
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
				switch {
				case p.GRPC != nil:
					require.True(t, hasPort(c, p.GRPC.Port, ""), "grpc probe port %d", p.GRPC.Port)
				case p.TCPSocket != nil:
					require.True(t, hasPort(c, p.TCPSocket.Port.IntVal, p.TCPSocket.Port.StrVal))
				case p.HTTPGet != nil:
					require.True(t, hasPort(c, p.HTTPGet.Port.IntVal, p.HTTPGet.Port.StrVal))
				}
			}

			// Every referenced ConfigMap/Secret key exists.
			for _, from := range c.EnvFrom {
				require.NotNil(t, from.ConfigMapRef)
				require.Contains(t, r.configMaps, from.ConfigMapRef.Name)
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				sec, ok := r.secrets[ref.Name]
				require.True(t, ok, "secret %s", ref.Name)
				_, ok = sec.StringData[ref.Key]
				require.True(t, ok, "secret %s has no key %s", ref.Name, ref.Key)
			}

			// A Service selects this Deployment's pods, and a PDB protects them.
			require.True(t, selectedByService(r, d), "no Service selects %s", name)
			pdb, ok := r.pdbs[name]
			require.True(t, ok, "PodDisruptionBudget for %s", name)
			require.True(t, subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels))
			require.True(t, subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels))
		})
	}

	hpa, ok := r.hpas["agentd"]
	require.True(t, ok, "agentd scales on its own")
	require.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	require.Equal(t, "agentd", hpa.Spec.ScaleTargetRef.Name)
	require.GreaterOrEqual(t, *hpa.Spec.MinReplicas, int32(2), "survives losing one replica")
	require.Equal(t, corev1.ClusterIPNone, r.services["agentd-headless"].Spec.ClusterIP,
		"clients balance per call over every agentd pod")
}

// TestConfigIsDocumented keeps the manifests and the README's configuration table in step: every
// variable the manifests set is one the README documents.
func TestConfigIsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)`").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	var vars []string
	for _, r := range []rendered{renderKubernetesDriver(t), renderDockerHost(t)} {
		for _, cm := range r.configMaps {
			vars = append(vars, keys(cm.Data)...)
		}
		for _, s := range r.secrets {
			vars = append(vars, keys(s.StringData)...)
		}
		for _, d := range r.deployments {
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				vars = append(vars, e.Name)
			}
		}
	}
	for _, v := range vars {
		require.True(t, documented[v], "%s is set by the Kubernetes manifests but not documented in README.md", v)
	}
}

func TestComposeFile(t *testing.T) {
	env := map[string]string{
		"MGX_INTERNAL_TOKEN": "x", "SANDBOXD_PREVIEW_SECRET": "x", "GATEWAY_JWT_SECRET": "x",
	}
	project, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  ".",
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml"}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("mgx", true) })
	require.NoError(t, err, "compose.yaml is valid against the compose specification")

	names := project.ServiceNames()
	require.ElementsMatch(t, []string{"redis", "sandboxd", "agentd", "gateway"}, names)

	redis, err := project.GetService("redis")
	require.NoError(t, err)
	require.Contains(t, strings.Join(redis.Command, " "), "--appendonly yes", "Redis persists with AOF")
	require.NotNil(t, redis.HealthCheck)

	gw, err := project.GetService("gateway")
	require.NoError(t, err)
	require.Len(t, gw.Ports, 1)
	require.Equal(t, "127.0.0.1", gw.Ports[0].HostIP, "only the gateway is published, on loopback")
	for _, name := range []string{"sandboxd", "agentd"} {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.Empty(t, svc.Ports, "%s is not published", name)
		require.Equal(t, types.ServiceConditionHealthy, svc.DependsOn["redis"].Condition)
	}
	for _, name := range names {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.NotNil(t, svc.HealthCheck, "%s has a health check", name)
	}
	sbx, _ := project.GetService("sandboxd")
	var sawSocket bool
	for _, v := range sbx.Volumes {
		if v.Target == "/var/run/docker.sock" {
			sawSocket = true
		}
		if v.Target == "/var/lib/mgx/sandboxes" {
			require.Equal(t, v.Source, v.Target, "run dir must have the same path on host and in the container")
		}
	}
	require.True(t, sawSocket, "sandboxd drives the host's engine")

	// Missing secrets stop `docker compose up` with a message instead of starting with defaults.
	delete(env, "MGX_INTERNAL_TOKEN")
	_, err = loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir: ".", ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml"}}, Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("mgx", true) })
	require.ErrorContains(t, err, "MGX_INTERNAL_TOKEN")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func hasPort(c corev1.Container, num int32, name string) bool {
	for _, p := range c.Ports {
		if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == num) {
			return true
		}
	}
	return false
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selectedByService(r rendered, d *appsv1.Deployment) bool {
	for _, s := range r.services {
		if subset(s.Spec.Selector, d.Spec.Template.Labels) {
			return true
		}
	}
	return false
}
