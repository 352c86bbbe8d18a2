// Package kubernetes runs sandboxes as pods of a Kubernetes cluster, through client-go: one pod per
// sandbox (the sandbox image, the sandbox-agent as its entrypoint, the Docker driver's hardening as the
// pod's security context). A driver volume is a PersistentVolumeClaim: a workspace is two claims, its
// files mounted at /workspace and its meta state (marker, checkpoint history) mounted beside it, both
// made, checked and removed by the domain through the driver's volume calls, so they outlive every pod
// of the session exactly as Docker volumes outlive containers.
//
// Two claims rather than two subPaths of one: the domain checks, lists and removes each volume by name
// (a lost meta volume is as much a lost workspace as lost files), and a claim is the only Kubernetes
// object a volume's labels and existence can live on without a pod to look inside. It also keeps the
// checkpoint history from filling the user's /workspace quota (each claim has its own size).
//
// The agent listens on TCP in the pod and sandboxd reaches it over the cluster network at the pod's IP,
// proving a per-sandbox secret on every connection (agentapi.ServerHandshake). The secret is generated
// here and given to the pod as a Secret mounted as a file; every sandboxd replica reads it from the API
// server, so any replica serves any session. The warm pool is sandboxd's own (package pool, a Redis set
// claimed atomically by any replica), as with every driver; the API server makes each claim exclusive
// on top of it (Claim: an update conditional on the pod's resourceVersion), since a Redis failover can
// hand one pop out twice.
package kubernetes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

// Labels beyond the driver's common ones.
const (
	// LabelRole tells the sandbox's pods from its workspace claims and secrets (the NetworkPolicies of
	// deploy/k8s need none: they fence every pod of the sandbox namespace).
	LabelRole = "mgx.sandboxd.role"
	// AnnotationPrefix holds the raw value of a label whose value Kubernetes cannot carry (see labelValue).
	AnnotationPrefix = "mgx.sandboxd/"
)

// Roles.
const (
	RoleSandbox   = "sandbox"
	RoleWorkspace = "workspace"
	RoleSecret    = "agent-secret"
)

// Paths and names inside the pod.
const (
	agentDir  = "/.mgx/bin"
	agentPath = agentDir + "/sandbox-agent"
	secretDir = "/.mgx/secret"
	// MetaPath is where the workspace's meta claim is mounted: beside /workspace, never inside it.
	MetaPath       = "/.mgx/meta"
	secretKey      = "token"
	containerName  = "sandbox"
	initName       = "install-agent"
	volAgent       = "agent"
	volSecret      = "agent-secret"
	volWorkspace   = "workspace"
	volMeta        = "meta"
	secretBytes    = 32
	defaultPort    = 7070
	nameSuffixLen  = 5
	removeWaitMax  = 30 * time.Second
	terminateGrace = 2
	// claimAttempts bounds a claim's conflicts: each means the pod changed under it (its status, by the
	// kubelet) but no session has it yet.
	claimAttempts = 5
)

// Options configure the driver.
type Options struct {
	// Namespace is the Kubernetes namespace sandboxes run in (SANDBOX_K8S_NAMESPACE).
	Namespace string
	// Kubeconfig is a kubeconfig file; "" means $KUBECONFIG, else the in-cluster service account.
	Kubeconfig string
	// RESTConfig, when set, is used instead of Kubeconfig (tests).
	RESTConfig *rest.Config
	// Image is the sandbox image (SANDBOX_IMAGE).
	Image string
	// AgentImage holds the static sandbox-agent at AgentImagePath; an init container copies it into
	// the pod (sandboxd's own image carries it).
	AgentImage     string
	AgentImagePath string
	// PullPolicy of both images ("" is Kubernetes' default for the tag).
	PullPolicy corev1.PullPolicy
	// User is "uid[:gid]", numeric: Kubernetes enforces runAsNonRoot only on numbers.
	User string
	// MilliCPU and Memory are the container's limits and requests (Guaranteed QoS: the numbers the
	// Docker driver enforces, reserved on the node).
	MilliCPU int64
	Memory   int64
	// RuntimeClass is the pod's runtimeClassName (SANDBOX_RUNTIME, e.g. gvisor); "" the cluster's.
	RuntimeClass string
	// StorageClass of workspace claims; "" means the cluster's default class.
	StorageClass string
	// WorkspaceSize is the size each workspace's files claim requests; MetaSize that of its meta claim
	// (the marker and the checkpoint history, which leaves heavy folders out).
	WorkspaceSize resource.Quantity
	MetaSize      resource.Quantity
	// ServiceAccount the pods run as ("" the namespace's default); its token is never mounted.
	ServiceAccount string
	// AgentPort is the port the agent serves on in every pod.
	AgentPort int
	// AgentRoute is how sandboxd reaches a pod's agent: RoutePodIP (default) or RoutePortForward.
	AgentRoute string
	// DeploymentNamespace is this deployment's driver.LabelNamespace value.
	DeploymentNamespace string
	Logger              *slog.Logger
}

// Driver is the Kubernetes driver.
type Driver struct {
	opts Options
	cfg  *rest.Config
	cs   k8s.Interface
	log  *slog.Logger
	uid  int64
	gid  int64
}

// New connects to the cluster and checks that the API server answers and the namespace exists.
func New(ctx context.Context, opts Options) (*Driver, error) {
	if opts.Namespace == "" {
		return nil, errors.New("kubernetes driver: no namespace for sandboxes")
	}
	if opts.Image == "" || opts.AgentImage == "" {
		return nil, errors.New("kubernetes driver: the sandbox image and the agent image are required")
	}
	if opts.AgentImagePath == "" {
		opts.AgentImagePath = "/sandbox-agent"
	}
	if opts.AgentPort == 0 {
		opts.AgentPort = defaultPort
	}
	switch opts.AgentRoute {
	case "":
		opts.AgentRoute = RoutePodIP
	case RoutePodIP, RoutePortForward:
	default:
		return nil, fmt.Errorf("kubernetes driver: %w %q (want %s or %s)", ErrRoute, opts.AgentRoute, RoutePodIP, RoutePortForward)
	}
	if opts.DeploymentNamespace == "" {
		opts.DeploymentNamespace = "mgx"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WorkspaceSize.IsZero() {
		opts.WorkspaceSize = resource.MustParse("10Gi")
	}
	if opts.MetaSize.IsZero() {
		opts.MetaSize = resource.MustParse("2Gi")
	}
	uid, gid, err := numericUser(opts.User)
	if err != nil {
		return nil, err
	}
	cfg := opts.RESTConfig
	if cfg == nil {
		if cfg, err = restConfig(opts.Kubeconfig); err != nil {
			return nil, err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "mgx-sandboxd"
	// Sandbox lifecycle is bursty (a pool refill, a wave of sessions): client-go's default 5 QPS would
	// queue a claim behind a refill.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Pods(opts.Namespace).List(pctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, fmt.Errorf("kubernetes API server: listing pods in namespace %s: %w", opts.Namespace, err)
	}
	return &Driver{opts: opts, cfg: cfg, cs: cs, log: opts.Logger, uid: uid, gid: gid}, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if in, ierr := rest.InClusterConfig(); ierr == nil {
		return in, nil
	}
	return nil, fmt.Errorf("kubernetes: no kubeconfig and not in a cluster: %w", err)
}

// Client exposes the clientset (tests, the bench).
func (d *Driver) Client() k8s.Interface { return d.cs }

// Name implements driver.Driver.
func (d *Driver) Name() string { return "kubernetes" }

// Close implements driver.Driver.
func (d *Driver) Close() error { return nil }

// Create implements driver.Driver: a secret for the agent and the pod mounting the workspace's two
// claims; it returns once the pod runs and has an IP (the caller then waits for the agent to answer).
// Both claims must exist: a pod naming a missing claim would wait for it, and a claim made now would be
// an empty replacement of a lost workspace.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	name := podName(spec.Name)
	if (spec.Data == "") != (spec.Meta == "") {
		return driver.Instance{}, errors.New("a workspace needs both its volumes")
	}
	spec.Labels = maps.Clone(spec.Labels)
	for _, v := range []string{spec.Data, spec.Meta} {
		if v == "" {
			continue
		}
		vol, err := d.InspectVolume(ctx, v)
		if err != nil {
			return driver.Instance{}, err
		}
		// The pod carries the workspace of the claims it mounts, so RemoveVolume finds the pods that
		// hold a claim by that label alone, never by reading every pod of the namespace.
		ws := vol.Labels[driver.LabelWorkspace]
		switch had := spec.Labels[driver.LabelWorkspace]; {
		case ws == "":
		case had != "" && had != ws:
			return driver.Instance{}, fmt.Errorf("pod of workspace %s cannot mount claim %s of workspace %s", had, v, ws)
		default:
			if spec.Labels == nil {
				spec.Labels = map[string]string{}
			}
			spec.Labels[driver.LabelWorkspace] = ws
		}
	}
	lbl := d.labels(spec.Labels)
	secret, err := randomHex(secretBytes)
	if err != nil {
		return driver.Instance{}, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-agent", Labels: withRole(lbl, RoleSecret), Annotations: d.annotations(spec.Labels)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{secretKey: []byte(secret)},
		Immutable:  new(true),
	}
	secrets := d.cs.CoreV1().Secrets(d.opts.Namespace)
	if sec, err = secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return driver.Instance{}, fmt.Errorf("create secret of %s: %w", name, err)
	}
	pod, err := d.cs.CoreV1().Pods(d.opts.Namespace).Create(ctx, d.podSpec(name, lbl, d.annotations(spec.Labels), spec.Data, spec.Meta), metav1.CreateOptions{})
	if err != nil {
		_ = secrets.Delete(context.WithoutCancel(ctx), sec.Name, metav1.DeleteOptions{})
		return driver.Instance{}, fmt.Errorf("create pod %s: %w", name, err)
	}
	// The secret belongs to the pod: the garbage collector deletes it with the pod, whoever deletes that.
	sec.OwnerReferences = []metav1.OwnerReference{podOwner(pod)}
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		d.cleanUp(ctx, pod.Name, pod.UID)
		return driver.Instance{}, fmt.Errorf("own secret of %s: %w", name, err)
	}
	pod, err = d.waitRunning(ctx, pod)
	if err != nil {
		d.cleanUp(ctx, name, pod.UID)
		return driver.Instance{}, err
	}
	return d.instance(pod), nil
}

// podSpec is a sandbox pod: the Docker driver's hardening (non-root, every capability dropped, no
// privilege escalation, the runtime's default seccomp profile, CPU and memory limits, the runtime
// passed through), no service account token, no service links, the agent as PID 1 of the sandbox
// container. The root filesystem stays writable, as with Docker: package managers write outside
// /workspace. The process limit (SANDBOX_PIDS_LIMIT) has no per-pod field in Kubernetes; the kubelet's
// podPidsLimit enforces one per node (see the README).
func (d *Driver) podSpec(name string, lbl, ann map[string]string, data, meta string) *corev1.Pod {
	res := corev1.ResourceList{}
	if d.opts.MilliCPU > 0 {
		res[corev1.ResourceCPU] = *resource.NewMilliQuantity(d.opts.MilliCPU, resource.DecimalSI)
	}
	if d.opts.Memory > 0 {
		res[corev1.ResourceMemory] = *resource.NewQuantity(d.opts.Memory, resource.BinarySI)
	}
	restricted := &corev1.SecurityContext{
		RunAsNonRoot:             new(true),
		RunAsUser:                &d.uid,
		RunAsGroup:               &d.gid,
		AllowPrivilegeEscalation: new(false),
		Privileged:               new(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	initSC := restricted.DeepCopy()
	// The init container only copies one file; nothing of it needs to write elsewhere.
	initSC.ReadOnlyRootFilesystem = new(true)
	args := []string{agentPath,
		"-listen-tcp", ":" + strconv.Itoa(d.opts.AgentPort),
		"-secret-file", secretDir + "/" + secretKey,
		"-workspace", workspace.Root, "-state-dir", "/tmp/.mgx-agent"}
	mounts := []corev1.VolumeMount{
		{Name: volAgent, MountPath: agentDir, ReadOnly: true},
		{Name: volSecret, MountPath: secretDir, ReadOnly: true},
		{Name: volWorkspace, MountPath: workspace.Root},
	}
	// Without volumes (a driver test's bare pod) the workspace is the pod's own and goes with it.
	wsSource := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(d.opts.WorkspaceSize)}}
	volumes := []corev1.Volume{
		{Name: volAgent, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(resource.MustParse("64Mi"))}}},
		{Name: volSecret, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name + "-agent", DefaultMode: new(int32(0o400)),
		}}},
	}
	if data != "" {
		wsSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: data}}
		mounts = append(mounts, corev1.VolumeMount{Name: volMeta, MountPath: MetaPath})
		volumes = append(volumes, corev1.Volume{Name: volMeta, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: meta}}})
		args = append(args, "-meta-dir", MetaPath)
	}
	volumes = append(volumes, corev1.Volume{Name: volWorkspace, VolumeSource: wsSource})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: withRole(lbl, RoleSandbox), Annotations: ann},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64(terminateGrace)),
			AutomountServiceAccountToken:  new(false),
			EnableServiceLinks:            new(false),
			ServiceAccountName:            d.opts.ServiceAccount,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: new(true),
				RunAsUser:    &d.uid,
				RunAsGroup:   &d.gid,
				// The workspace's claims (files and meta) are made writable for the sandbox's group: a
				// fresh claim is the provisioner's, not the sandbox user's (Docker's Fresh preparation).
				FSGroup:        &d.gid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			InitContainers: []corev1.Container{{
				Name:            initName,
				Image:           d.opts.AgentImage,
				ImagePullPolicy: d.opts.PullPolicy,
				Command:         []string{d.opts.AgentImagePath, "-install", agentPath},
				SecurityContext: initSC,
				VolumeMounts:    []corev1.VolumeMount{{Name: volAgent, MountPath: agentDir}},
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
			}},
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           d.opts.Image,
				ImagePullPolicy: d.opts.PullPolicy,
				Command:         args,
				WorkingDir:      workspace.Root,
				Env:             []corev1.EnvVar{{Name: "MGX_SANDBOX", Value: "1"}},
				Ports:           []corev1.ContainerPort{{Name: "agent", ContainerPort: int32(d.opts.AgentPort), Protocol: corev1.ProtocolTCP}},
				SecurityContext: restricted,
				Resources:       corev1.ResourceRequirements{Limits: res, Requests: res},
				VolumeMounts:    mounts,
			}},
			Volumes: volumes,
		},
	}
	if d.opts.RuntimeClass != "" {
		pod.Spec.RuntimeClassName = &d.opts.RuntimeClass
	}
	return pod
}

// waitRunning watches the pod until it runs with an IP, fails, or ctx ends (then the error says why it
// is still pending: unschedulable, an unbound claim, an image pull).
func (d *Driver) waitRunning(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	pods := d.cs.CoreV1().Pods(d.opts.Namespace)
	last := pod
	for {
		if ok, err := running(last); ok || err != nil {
			return last, err
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
			ResourceVersion: last.ResourceVersion,
		})
		if err != nil {
			return last, fmt.Errorf("pod %s not running: %w (%s)", pod.Name, err, pending(last))
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Deleted:
				w.Stop()
				return last, fmt.Errorf("pod %s was deleted while starting", pod.Name)
			case watch.Error:
				continue
			}
			if p, ok := ev.Object.(*corev1.Pod); ok {
				last = p
				if ok, err := running(p); ok || err != nil {
					w.Stop()
					return p, err
				}
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return last, fmt.Errorf("pod %s not running: %w (%s)", pod.Name, ctx.Err(), pending(last))
		}
		// The watch ended (timeout, a compaction): look again and resume.
		if p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{}); err == nil {
			last = p
		} else if apierrors.IsNotFound(err) {
			return last, fmt.Errorf("pod %s was deleted while starting", pod.Name)
		}
	}
}

func running(p *corev1.Pod) (bool, error) {
	switch p.Status.Phase {
	case corev1.PodRunning:
		return p.Status.PodIP != "" && p.DeletionTimestamp == nil, nil
	case corev1.PodFailed, corev1.PodSucceeded:
		return false, fmt.Errorf("pod %s ended (%s): %s", p.Name, p.Status.Phase, p.Status.Message)
	}
	return false, nil
}

// pending describes why a pod is not running yet.
func pending(p *corev1.Pod) string {
	var why []string
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			why = append(why, string(c.Type)+": "+c.Message)
		}
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			why = append(why, cs.Name+": "+w.Reason+" "+w.Message)
		}
	}
	if len(why) == 0 {
		return "phase " + string(p.Status.Phase)
	}
	return strings.Join(why, "; ")
}

// Remove implements driver.Driver: the pod goes (its secret with it), the workspace's claims stay. It
// waits, within bounds, until the pod is gone, so the session's next pod never shares the claims with a
// terminating one.
func (d *Driver) Remove(ctx context.Context, id string) error {
	name, uid := splitID(id)
	if name == "" {
		return nil
	}
	return d.removePod(ctx, name, uid)
}

// cleanUp removes the pod of a failed creation; one left behind is an orphan that reconciliation
// removes later.
func (d *Driver) cleanUp(ctx context.Context, name string, uid types.UID) {
	if err := d.removePod(context.WithoutCancel(ctx), name, uid); err != nil {
		d.log.WarnContext(ctx, "remove pod of a failed creation", "pod", name, "err", err)
	}
}

func (d *Driver) removePod(ctx context.Context, name string, uid types.UID) error {
	opts := metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationBackground)}
	if uid != "" {
		// Never the namesake of another instance.
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	pods := d.cs.CoreV1().Pods(d.opts.Namespace)
	err := pods.Delete(ctx, name, opts)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	// The garbage collector deletes the secret once the pod is gone; deleting it now as well keeps a
	// cluster without one (or a slow one) from collecting them.
	if err := d.cs.CoreV1().Secrets(d.opts.Namespace).Delete(ctx, name+"-agent", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		d.log.WarnContext(ctx, "delete agent secret", "pod", name, "err", err)
	}
	wctx, cancel := context.WithTimeout(ctx, removeWaitMax)
	defer cancel()
	for {
		p, err := pods.Get(wctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && uid != "" && p.UID != uid) {
			return nil
		}
		select {
		case <-wctx.Done():
			d.log.WarnContext(ctx, "pod still terminating", "pod", name)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Inspect implements driver.Driver. id is "name/uid" (or a bare name).
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	name, uid := splitID(id)
	p, err := d.cs.CoreV1().Pods(d.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return driver.Instance{}, driver.ErrNotFound
	}
	if err != nil {
		return driver.Instance{}, fmt.Errorf("get pod %s: %w", name, err)
	}
	if uid != "" && p.UID != uid {
		return driver.Instance{}, driver.ErrNotFound
	}
	return d.instance(p), nil
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context) ([]driver.Instance, error) {
	return d.list(ctx, nil)
}

func (d *Driver) list(ctx context.Context, extra map[string]string) ([]driver.Instance, error) {
	set := map[string]string{driver.LabelManaged: "1", driver.LabelNamespace: labelValue(d.opts.DeploymentNamespace), LabelRole: RoleSandbox}
	for k, v := range extra {
		set[k] = v
	}
	l, err := d.cs.CoreV1().Pods(d.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String()})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := make([]driver.Instance, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, d.instance(&l.Items[i]))
	}
	return out, nil
}

// Claim implements driver.Claimer: the warm pod gets the session's label by a merge patch conditional
// on inst.Version, the resourceVersion at which inst was described unclaimed (as the pool recorded
// it): one round trip when nothing changed the pod since. A conflict means the pod changed: it is
// looked at again, and it is the session's unless another session's label is on it already
// (driver.ErrClaimed) or it is gone or going (driver.ErrNotFound).
func (d *Driver) Claim(ctx context.Context, inst driver.Instance, userID, sessionID string) (driver.Instance, error) {
	name, uid := splitID(inst.ID)
	if name == "" || sessionID == "" {
		return driver.Instance{}, errors.New("claim: no pod or no session")
	}
	pods := d.cs.CoreV1().Pods(d.opts.Namespace)
	mine := labelValue(sessionID)
	if owner := inst.Labels[driver.LabelSession]; owner != "" && owner != sessionID {
		// Described as another session's at that version: a patch on it would take it away.
		return driver.Instance{}, driver.ErrClaimed
	}
	raw := map[string]string{driver.LabelSession: sessionID}
	if userID != "" {
		raw[driver.LabelOwner] = userID
	}
	lbl := make(map[string]string, len(raw))
	for k, v := range raw {
		lbl[k] = labelValue(v)
	}
	meta := map[string]any{"labels": lbl}
	if ann := d.annotations(raw); len(ann) > 0 {
		meta["annotations"] = ann
	}
	if uid != "" {
		// Never a namesake: the API server refuses a patch that would change the uid.
		meta["uid"] = string(uid)
	}
	version := inst.Version
	for range claimAttempts {
		if version != "" {
			meta["resourceVersion"] = version
			patch, err := json.Marshal(map[string]any{"metadata": meta})
			if err != nil {
				return driver.Instance{}, err
			}
			p, err := pods.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			switch {
			case err == nil:
				return d.instance(p), nil
			case apierrors.IsNotFound(err):
				return driver.Instance{}, driver.ErrNotFound
			case !apierrors.IsConflict(err) && !apierrors.IsInvalid(err):
				return driver.Instance{}, fmt.Errorf("claim pod %s: %w", name, err)
			}
		}
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return driver.Instance{}, driver.ErrNotFound
		}
		if err != nil {
			return driver.Instance{}, fmt.Errorf("claim pod %s: %w", name, err)
		}
		switch owner, claimed := p.Labels[driver.LabelSession]; {
		case uid != "" && p.UID != uid, p.DeletionTimestamp != nil:
			return driver.Instance{}, driver.ErrNotFound
		case claimed && owner == mine:
			return d.instance(p), nil // an earlier attempt of this claim went through
		case claimed:
			return driver.Instance{}, driver.ErrClaimed
		}
		version = p.ResourceVersion
	}
	return driver.Instance{}, fmt.Errorf("claim pod %s: still changing after %d attempts", name, claimAttempts)
}

// AgentSecret implements driver.AgentSecrets: the secret of the pod's own Secret, checked to belong to
// that very pod.
func (d *Driver) AgentSecret(ctx context.Context, inst driver.Instance) ([]byte, error) {
	name, uid := splitID(inst.ID)
	if name == "" {
		name = inst.Name
	}
	s, err := d.cs.CoreV1().Secrets(d.opts.Namespace).Get(ctx, name+"-agent", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("agent secret of %s: %w", name, err)
	}
	if uid != "" {
		owned := false
		for _, o := range s.OwnerReferences {
			owned = owned || o.UID == uid
		}
		if !owned {
			return nil, fmt.Errorf("agent secret of %s belongs to another pod", name)
		}
	}
	if len(s.Data[secretKey]) == 0 {
		return nil, fmt.Errorf("agent secret of %s is empty", name)
	}
	return s.Data[secretKey], nil
}

// instance describes a pod.
func (d *Driver) instance(p *corev1.Pod) driver.Instance {
	in := driver.Instance{
		ID: p.Name + "/" + string(p.UID), Name: p.Name, Labels: d.rawLabels(p.Labels, p.Annotations),
		Created: p.CreationTimestamp.Time, Workspace: workspace.Root, Version: p.ResourceVersion,
	}
	in.WorkspaceID = in.Labels[driver.LabelWorkspace]
	in.Running, _ = running(p)
	if p.Status.PodIP != "" {
		in.Endpoint = net.JoinHostPort(p.Status.PodIP, strconv.Itoa(d.opts.AgentPort))
	}
	return in
}

// labels are the driver's labels of what it creates, with values Kubernetes accepts.
func (d *Driver) labels(spec map[string]string) map[string]string {
	out := map[string]string{driver.LabelManaged: "1", driver.LabelNamespace: labelValue(d.opts.DeploymentNamespace)}
	for k, v := range spec {
		out[k] = labelValue(v)
	}
	return out
}

// annotations keep the raw values of labels whose values had to be hashed.
func (d *Driver) annotations(spec map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range spec {
		if labelValue(v) != v {
			out[AnnotationPrefix+k] = v
		}
	}
	return out
}

// rawLabels restores hashed label values from their annotations.
func (d *Driver) rawLabels(lbl, ann map[string]string) map[string]string {
	out := make(map[string]string, len(lbl))
	for k, v := range lbl {
		out[k] = v
		if raw, ok := ann[AnnotationPrefix+k]; ok && labelValue(raw) == v {
			out[k] = raw
		}
	}
	return out
}

// labelValue is v when Kubernetes accepts it as a label value, else a stable hash of it (an owner id may
// be an e-mail address; label values allow 63 characters of [A-Za-z0-9._-]).
func labelValue(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	return "h." + hashHex(v)[:40]
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func withRole(lbl map[string]string, role string) map[string]string {
	out := make(map[string]string, len(lbl)+1)
	for k, v := range lbl {
		out[k] = v
	}
	out[LabelRole] = role
	return out
}

func podOwner(p *corev1.Pod) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: p.Name, UID: p.UID}
}

// podName turns an instance name into a pod name: lower case (DNS-1123), with a random suffix, so a
// session's next pod never waits for the name of a terminating one.
func podName(name string) string {
	n := dnsName(name)
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	suffix := make([]byte, nameSuffixLen)
	for i := range suffix {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		suffix[i] = alphabet[k.Int64()]
	}
	return strings.TrimRight(n[:min(len(n), validation.DNS1123LabelMaxLength-nameSuffixLen-1)], "-.") + "-" + string(suffix)
}

func dnsName(s string) string {
	s = strings.ToLower(s)
	b := []byte(s)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b[:min(len(b), validation.DNS1123LabelMaxLength)]), "-")
}

func splitID(id string) (string, types.UID) {
	name, uid, _ := strings.Cut(id, "/")
	return name, types.UID(uid)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func numericUser(u string) (int64, int64, error) {
	if u == "" {
		u = "1000:1000"
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	uid, err := strconv.ParseInt(us, 10, 64)
	if err != nil || uid <= 0 {
		return 0, 0, fmt.Errorf("kubernetes driver: SANDBOX_USER=%q must be a numeric, non-root uid[:gid]", u)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.ParseInt(gs, 10, 64); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("kubernetes driver: SANDBOX_USER=%q must be a numeric, non-root uid[:gid]", u)
		}
	}
	return uid, gid, nil
}
