// Package kubetest runs a real Kubernetes control plane for sandboxd's tests: etcd and kube-apiserver
// (started by controller-runtime's envtest), kube-controller-manager (garbage collection, claim binding,
// service accounts, namespace deletion), kube-scheduler, and kwok's simulated node, which makes scheduled
// pods Running with an IP. The binaries are built once from the Go module proxy (`make k8s-test-bin`),
// never inside a test.
//
// Two stand-ins complete the cluster, each doing what a real cluster's node-side parts do and nothing
// more: a volume provisioner that gives every pending claim of StorageClass a PersistentVolume (the
// controller manager then binds them, as with any external provisioner), and Agents, a "kubelet" for the
// sandbox container alone: simulated pods run no processes, so for every running sandbox pod it starts
// the real sandbox-agent on the pod's IP (kwok hands out loopback addresses here) with the secret of the
// pod's own Secret and a host directory per workspace claim, so a claim's files outlive its pods exactly
// as a volume's do.
package kubetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/proctree"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// StorageClass is the class of the provisioner stand-in.
const StorageClass = "mgx-test"

const provisionerName = "mgx.test/hostdir"

// Cluster is a running control plane.
type Cluster struct {
	Config *rest.Config
	Client k8s.Interface
	// Kubeconfig is an admin kubeconfig file (for sandboxd processes).
	Kubeconfig string
	// AgentPort is the port sandbox agents serve on in pods; pass it to the driver.
	AgentPort int
	// PodCIDR is where kwok takes pod IPs from: a loopback /24 of this cluster's own.
	PodCIDR string
	// What the driver under test is given: the images of sandbox pods, their pull policy and the
	// StorageClass of workspace claims ("" the cluster's default).
	SandboxImage, AgentImage string
	PullPolicy               corev1.PullPolicy
	StorageClass             string
	// Real is true for a cluster of real nodes (the real-cluster suite): kubelets run the pods' agents.
	Real bool
	dir  string
	dyn  dynamic.Interface // kwok's PortForward objects (simulated cluster only)
}

// Start runs a cluster for t; everything stops when t ends. Without the binaries it skips t (fails it
// under CI=true) saying how to build them. With $KUBECONFIG set, the cluster is that one instead (see
// startReal).
func Start(t *testing.T) *Cluster {
	t.Helper()
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		return startReal(t, kc)
	}
	assets := stacktest.KubeAssets(t)
	dir := t.TempDir()
	kwokMod := kwokModule(t)
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		// kwok's PortForward kind: the agents' stand-in declares per pod where its port-forwards go.
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: []string{filepath.Join(kwokMod, "kustomize", "crd", "bases", "kwok.x-k8s.io_portforwards.yaml")}},
	}
	apiserver := env.ControlPlane.GetAPIServer().Configure()
	// envtest turns the ServiceAccount admission plugin off because it runs no controller manager; this
	// cluster runs one, so pods are admitted as in production (their service account must exist).
	apiserver.Disable("disable-admission-plugins")
	// pods/portforward reaches the node's "kubelet" (kwok's server) at its loopback InternalIP.
	apiserver.Set("kubelet-preferred-address-types", "InternalIP")
	start := time.Now()
	cfg, err := env.Start()
	require.NoError(t, err, "envtest: etcd and kube-apiserver from %s", assets)
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("envtest stop: %v", err)
		}
	})
	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, env.KubeConfig, 0o600))
	cs, err := k8s.NewForConfig(cfg)
	require.NoError(t, err)

	c := &Cluster{Config: cfg, Client: cs, Kubeconfig: kubeconfig, AgentPort: stacktest.Port(t), dir: dir,
		PodCIDR:      fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(150), 1+rand.IntN(250)),
		SandboxImage: "mgx-sandbox:test", AgentImage: "mgx/sandboxd:test", PullPolicy: corev1.PullNever, StorageClass: StorageClass}
	c.dyn, err = dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	common := []string{"--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1"}
	stacktest.Start(t, "kube-controller-manager", filepath.Join(assets, "kube-controller-manager"), nil, append(common,
		"--secure-port", strconv.Itoa(stacktest.Port(t)), "--cert-dir", filepath.Join(dir, "kcm"),
		"--use-service-account-credentials=false", "--controllers=*")...)
	stacktest.Start(t, "kube-scheduler", filepath.Join(assets, "kube-scheduler"), nil, append(common,
		"--secure-port", strconv.Itoa(stacktest.Port(t)), "--cert-dir", filepath.Join(dir, "scheduler"))...)
	// kwok's server plays the kubelet's API (port-forward) on the node's port, over TLS with a
	// certificate of its own, which the API server does not verify without a kubelet CA, as in any
	// cluster set up so.
	nodePort := stacktest.Port(t)
	stacktest.Start(t, "kwok", filepath.Join(assets, "kwok"), nil,
		"--kubeconfig", kubeconfig, "--config", kwokStages(t, kwokMod, dir), "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--server-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(nodePort)), "--node-port", strconv.Itoa(nodePort),
		"--enable-crds", "PortForward",
		"--cidr", c.PodCIDR, "--node-ip", "127.0.0.1")

	ctx := t.Context()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "kwok-node-0",
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"kubernetes.io/hostname": "kwok-node-0", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250")},
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250")},
			NodeInfo:    corev1.NodeSystemInfo{Architecture: "amd64", OperatingSystem: "linux", KubeletVersion: "fake"},
		},
	}
	_, err = cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	require.NoError(t, err)
	stacktest.Eventually(t, 2*time.Minute, func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}, "kwok makes node %s Ready", node.Name)

	_, err = cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: StorageClass},
		Provisioner:       provisionerName,
		ReclaimPolicy:     new(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode: new(storagev1.VolumeBindingImmediate),
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); c.provision(pctx) }()
	t.Cleanup(func() { stop(); <-done })
	t.Logf("kubetest: control plane ready in %s (pods on %s, agents on port %d)", time.Since(start).Round(100*time.Millisecond), c.PodCIDR, c.AgentPort)
	return c
}

// startReal is the real-cluster suite: the cluster of kubeconfig, whose nodes pull the images and run
// the pods, whose provisioner makes the claims' volumes and whose kubelets start the real agents. The
// suite creates namespaces of its own only (each case's, deleted when it ends) and nothing
// cluster-wide. The test process must reach pod IPs (run it on a node or in a pod of the cluster), as
// sandboxd does. Settings:
//
//	MGX_K8S_TEST_SANDBOX_IMAGE  sandbox image the nodes can pull (default mgx-sandbox:latest)
//	MGX_K8S_TEST_AGENT_IMAGE    image carrying /usr/local/bin/sandbox-agent (default mgx/sandboxd:latest)
//	MGX_K8S_TEST_PULL_POLICY    pull policy of both (default IfNotPresent)
//	MGX_K8S_TEST_STORAGE_CLASS  StorageClass of workspace claims (default: the cluster's default class)
func startReal(t *testing.T, kubeconfig string) *Cluster {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err, "real-cluster suite: KUBECONFIG=%s", kubeconfig)
	cs, err := k8s.NewForConfig(cfg)
	require.NoError(t, err)
	v, err := cs.Discovery().ServerVersion()
	require.NoError(t, err, "real-cluster suite: the API server of %s", cfg.Host)
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	c := &Cluster{Config: cfg, Client: cs, Kubeconfig: kubeconfig, AgentPort: 7070, Real: true, dir: t.TempDir(),
		SandboxImage: env("MGX_K8S_TEST_SANDBOX_IMAGE", "mgx-sandbox:latest"),
		AgentImage:   env("MGX_K8S_TEST_AGENT_IMAGE", "mgx/sandboxd:latest"),
		PullPolicy:   corev1.PullPolicy(env("MGX_K8S_TEST_PULL_POLICY", string(corev1.PullIfNotPresent))),
		StorageClass: os.Getenv("MGX_K8S_TEST_STORAGE_CLASS")}
	t.Logf("kubetest: the real cluster at %s (Kubernetes %s), sandbox image %s", cfg.Host, v.GitVersion, c.SandboxImage)
	return c
}

// kwokModule is the directory of the kwok module k8s-test-bin built the binary from.
func kwokModule(t *testing.T) string {
	t.Helper()
	root, err := stacktest.RepoRoot()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok")
	cmd.Dir = filepath.Join(root, stacktest.KubeToolsDir, "kwok")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	require.NoError(t, err, "locating the kwok module (run `make k8s-test-bin`)")
	return strings.TrimSpace(string(out))
}

// kwokStages writes kwok's own stage definitions (a node that turns Ready and heartbeats, the general
// pod lifecycle: scheduled, init containers, running, deleted) into a config file: kwok v0.8 simulates
// nothing without one. They come from the kwok module k8s-test-bin built the binary from, so the two
// never disagree.
func kwokStages(t *testing.T, mod, dir string) string {
	t.Helper()
	var docs []string
	for _, sub := range []string{"node/fast", "node/heartbeat", "pod/general"} {
		files, err := filepath.Glob(filepath.Join(mod, "kustomize", "stage", sub, "*.yaml"))
		require.NoError(t, err)
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			docs = append(docs, string(b))
		}
	}
	require.NotEmpty(t, docs, "kwok stages in %s", mod)
	path := filepath.Join(dir, "kwok.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o600))
	return path
}

// Namespace creates a namespace for t that enforces the "restricted" Pod Security Standard (so the API
// server itself refuses a sandbox pod hardened less than that) and waits for its default service
// account; it is deleted when t ends.
func (c *Cluster) Namespace(t *testing.T, prefix string) string {
	t.Helper()
	ctx := t.Context()
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: prefix + "-",
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	stacktest.Eventually(t, time.Minute, func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}, "the controller manager creates the default service account of %s", ns.Name)
	return ns.Name
}

// provision is the volume provisioner stand-in: every pending claim of StorageClass gets a hostPath
// volume pre-bound to it, which kube-controller-manager's volume binder completes.
func (c *Cluster) provision(ctx context.Context) {
	done := map[types.UID]bool{}
	for ctx.Err() == nil {
		l, err := c.Client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, pvc := range l.Items {
				if done[pvc.UID] || pvc.Spec.VolumeName != "" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != StorageClass {
					continue
				}
				pv := &corev1.PersistentVolume{
					ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(pvc.UID),
						Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionerName}},
					Spec: corev1.PersistentVolumeSpec{
						Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
						AccessModes:                   pvc.Spec.AccessModes,
						PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
						StorageClassName:              StorageClass,
						ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
						PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: filepath.Join(c.dir, "volumes", string(pvc.UID))}},
					},
				}
				if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err == nil || apierrors.IsAlreadyExists(err) {
					done[pvc.UID] = true
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Agents is the node-side stand-in for the sandbox container of every running sandbox pod of a
// namespace: the real sandbox-agent, on the pod's IP and the agent port, with the pod's secret and one
// workspace directory per claim.
type Agents struct {
	c         *Cluster
	t         *testing.T
	namespace string
	binary    string
	mu        sync.Mutex
	running   map[types.UID]*agentProc
	started   int
	stop      func()
}

type agentProc struct {
	pod, ip, claim, mark string
	proc                 *stacktest.Proc
}

// end ends an agent and every process it started, as the end of the pod's container would.
func (a *Agents) end(ap *agentProc) {
	ap.proc.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := proctree.End(ctx, proctree.Marked(ap.mark)); err != nil {
		a.t.Logf("kubetest: processes of pod %s: %v", ap.pod, err)
	}
}

// RunAgents starts the stand-in for namespace. Call Stop (defer it) before t ends: the agents it
// starts are t's processes, and none may start while t's cleanups run.
func (c *Cluster) RunAgents(t *testing.T, namespace, agentBinary string) *Agents {
	a := &Agents{c: c, t: t, namespace: namespace, binary: agentBinary, running: map[types.UID]*agentProc{}}
	if c.Real {
		a.stop = func() {} // the kubelets run the agents
		return a
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() { defer close(done); a.loop(ctx) }()
	var once sync.Once
	a.stop = func() { once.Do(func() { stop(); <-done }) }
	t.Cleanup(a.stop)
	return a
}

// Stop ends the stand-in and its agents.
func (a *Agents) Stop() { a.stop() }

// Started counts the agents started so far.
func (a *Agents) Started() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.started
}

// Workspace is the host directory standing for a workspace claim's volume.
func (a *Agents) Workspace(claim string) string {
	return filepath.Join(a.c.dir, "workspaces", a.namespace, claim)
}

func (a *Agents) loop(ctx context.Context) {
	for ctx.Err() == nil {
		a.sync(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for uid, ap := range a.running {
		a.end(ap)
		delete(a.running, uid)
	}
}

func (a *Agents) sync(ctx context.Context) {
	l, err := a.c.Client.CoreV1().Pods(a.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	live := map[types.UID]bool{}
	for i := range l.Items {
		p := &l.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || len(p.Spec.Containers) == 0 ||
			!slices.Contains(p.Spec.Containers[0].Command, "-listen-tcp") {
			continue
		}
		live[p.UID] = true
		a.mu.Lock()
		_, ok := a.running[p.UID]
		a.mu.Unlock()
		if !ok {
			a.start(ctx, p)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for uid, ap := range a.running {
		if !live[uid] {
			// The pod's container dies with the pod.
			a.end(ap)
			delete(a.running, uid)
		}
	}
}

func (a *Agents) start(ctx context.Context, p *corev1.Pod) {
	// The container's mounts of claims, by mount path: the workspace (its files) and, beside it, its
	// meta claim; the host directory of each claim stands for its volume.
	var secretName string
	claimOf := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			secretName = v.Secret.SecretName
		}
		if v.PersistentVolumeClaim != nil {
			claimOf[v.Name] = v.PersistentVolumeClaim.ClaimName
		}
	}
	mounted := map[string]string{}
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if c, ok := claimOf[m.Name]; ok {
			mounted[m.MountPath] = c
		}
	}
	claim := mounted[workspace.Root]
	sec, err := a.c.Client.CoreV1().Secrets(a.namespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return // the pod would not start without it either; retried on the next sync
	}
	var token []byte
	for _, b := range sec.Data {
		token = b
	}
	dir := filepath.Join(a.c.dir, "pods", string(p.UID))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, token, 0o400); err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// kwok may hand a deleted pod's IP to a new one: its agent must go first.
	for uid, ap := range a.running {
		if ap.ip == p.Status.PodIP {
			a.end(ap)
			delete(a.running, uid)
		}
	}
	addr := net.JoinHostPort(p.Status.PodIP, strconv.Itoa(a.c.AgentPort))
	ws := filepath.Join(dir, "workspace") // no claim: the pod's own emptyDir
	if claim != "" {
		ws = a.Workspace(claim)
	}
	args := []string{"-listen-tcp", addr, "-secret-file", secretFile, "-workspace", ws, "-state-dir", filepath.Join(dir, "state")}
	cmd := p.Spec.Containers[0].Command
	if i := slices.Index(cmd, "-meta-dir"); i >= 0 && i+1 < len(cmd) {
		meta, ok := mounted[cmd[i+1]]
		if !ok {
			return // the agent would find no meta volume either
		}
		args = append(args, "-meta-dir", a.Workspace(meta))
		// A provisioned volume is an existing directory.
		_ = os.MkdirAll(a.Workspace(meta), 0o700)
	}
	_ = os.MkdirAll(ws, 0o700)
	if err := a.declareForward(ctx, p); err != nil {
		a.t.Logf("kubetest: port-forward of %s: %v", p.Name, err)
		return
	}
	// Every process the agent starts inherits the mark, so the pod's end ends them all, as a
	// container's end does (the agent runs each command in a process group of its own).
	mark := "MGX_KUBETEST_POD=" + string(p.UID)
	name, value, _ := strings.Cut(mark, "=")
	proc := stacktest.Start(a.t, "agent of "+p.Name, a.binary, map[string]string{name: value}, args...)
	a.running[p.UID] = &agentProc{pod: p.Name, ip: p.Status.PodIP, claim: claim, proc: proc, mark: mark}
	a.started++
}

// Logs of the agents still running, for a failing test (on a real cluster: the pods' states, and the
// agents' logs are kubectl's).
func (a *Agents) String() string {
	if a.c.Real {
		return a.podStates()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	for _, ap := range a.running {
		fmt.Fprintf(&b, "%s (%s, claim %s): %s\n", ap.pod, ap.ip, ap.claim, ap.proc.Output())
	}
	return b.String()
}

func (a *Agents) podStates() string {
	l, err := a.c.Client.CoreV1().Pods(a.namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range l.Items {
		fmt.Fprintf(&b, "%s: %s %s", p.Name, p.Status.Phase, p.Status.PodIP)
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, "; %s waiting: %s %s", cs.Name, w.Reason, w.Message)
			}
			if x := cs.State.Terminated; x != nil {
				fmt.Fprintf(&b, "; %s ended: %s %s", cs.Name, x.Reason, x.Message)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "(logs: kubectl -n %s logs <pod> -c sandbox)\n", a.namespace)
	return b.String()
}

var portForwards = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}

// declareForward tells kwok's "kubelet" where the pod's agent port is, so pods/portforward reaches the
// agent as a kubelet's would. It is the pod's namesake and goes with the namespace.
func (a *Agents) declareForward(ctx context.Context, p *corev1.Pod) error {
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{"name": p.Name, "namespace": p.Namespace},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(a.c.AgentPort)},
			"target": map[string]any{"port": int64(a.c.AgentPort), "address": p.Status.PodIP},
		}}},
	}}
	_, err := a.c.dyn.Resource(portForwards).Namespace(p.Namespace).Create(ctx, pf, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
