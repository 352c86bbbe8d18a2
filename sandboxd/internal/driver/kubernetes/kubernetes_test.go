package kubernetes

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/kubetest"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
)

func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries("sandbox-agent")) }

// The control plane takes tens of seconds to start on a loaded machine, so one serves every case; each
// case has a namespace of its own.
func TestDriver(t *testing.T) {
	c := kubetest.Start(t)
	agent := stacktest.Bin(t, "sandbox-agent")

	t.Run("lifecycle: reap keeps the workspace, resume mounts it, forget deletes it", func(t *testing.T) {
		ns := c.Namespace(t, "lifecycle")
		agents := c.RunAgents(t, ns, agent)
		defer agents.Stop()
		d := newDriver(t, c, ns)
		ctx := t.Context()
		// An owner id a label value cannot carry: the label holds a hash, the instance the raw value.
		lbl := map[string]string{driver.LabelSession: "Sess-1", driver.LabelOwner: "alice@example.com"}

		inst, err := d.Create(ctx, driver.Spec{Name: "mgx-sbx-Sess-1", Labels: lbl})
		require.NoError(t, err)
		require.True(t, inst.Running)
		require.Equal(t, "alice@example.com", inst.Labels[driver.LabelOwner])
		require.Equal(t, "Sess-1", inst.Labels[driver.LabelSession])
		pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, inst.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, pod.Status.PodIP+":"+strconv.Itoa(c.AgentPort), inst.Endpoint)
		requireHardened(t, pod)

		// The agent is reached at the pod endpoint with the secret only the pod's Secret holds.
		cli := agentclient.NewNetwork(inst.Endpoint, func(ctx context.Context) ([]byte, error) { return d.AgentSecret(ctx, inst) })
		defer cli.Close()
		eventuallyExec(t, cli, "echo kept > notes.txt && pwd", agents)
		wrong := agentclient.NewNetwork(inst.Endpoint, func(context.Context) ([]byte, error) { return []byte(strings.Repeat("0", 64)), nil })
		_, err = wrong.Health(ctx)
		require.ErrorIs(t, err, agentapi.ErrDenied)
		wrong.Close()

		claims, err := d.sessionClaims(ctx, "Sess-1")
		require.NoError(t, err)
		require.Len(t, claims, 1)
		claim := claims[0].Name

		list, err := d.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, inst.ID, list[0].ID)

		// Reaping: the pod and its secret go, the claim stays.
		require.NoError(t, d.Remove(ctx, inst.ID))
		_, err = d.Inspect(ctx, inst.ID)
		require.ErrorIs(t, err, driver.ErrNotFound)
		stacktest.Eventually(t, time.Minute, func() bool {
			_, err := c.Client.CoreV1().Secrets(ns).Get(ctx, inst.Name+"-agent", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, "the agent secret of %s is deleted with its pod", inst.Name)
		_, err = c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		require.NoError(t, err, "reaping keeps the workspace claim")

		// Resume: a new pod (a new name, so it never waits for the old one's) on the same claim.
		again, err := d.Create(ctx, driver.Spec{Name: "mgx-sbx-Sess-1", Labels: lbl})
		require.NoError(t, err)
		require.NotEqual(t, inst.Name, again.Name)
		pod, err = c.Client.CoreV1().Pods(ns).Get(ctx, again.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, claim, claimOf(pod))
		cli2 := agentclient.NewNetwork(again.Endpoint, func(ctx context.Context) ([]byte, error) { return d.AgentSecret(ctx, again) })
		defer cli2.Close()
		out := eventuallyExec(t, cli2, "cat notes.txt", agents)
		require.Equal(t, "kept\n", out)
		// The old pod's secret never opens the new pod.
		_, err = d.AgentSecret(ctx, driver.Instance{ID: again.Name + "/" + "not-its-uid", Name: again.Name})
		require.Error(t, err)

		// Deleting the session: the pod, then its claim.
		require.NoError(t, d.Remove(ctx, again.ID))
		require.NoError(t, d.Forget(ctx, "Sess-1"))
		stacktest.Eventually(t, time.Minute, func() bool {
			_, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, "the workspace claim %s is deleted", claim)
		list, err = d.List(ctx)
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("the API server's refusal reaches the caller and leaves nothing behind", func(t *testing.T) {
		ns := c.Namespace(t, "refused")
		d := newDriver(t, c, ns, func(o *Options) { o.RuntimeClass = "no-such-runtime" })
		ctx := t.Context()
		_, err := d.Create(ctx, driver.Spec{Name: "mgx-sbx-refused", Labels: map[string]string{driver.LabelSession: "refused"}})
		require.ErrorContains(t, err, "no-such-runtime")
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, pods.Items)
		secrets, err := c.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleSecret})
		require.NoError(t, err)
		require.Empty(t, secrets.Items)
	})

	t.Run("a stale pool claim loses to a conflict and takes the next pod", func(t *testing.T) {
		ns := c.Namespace(t, "pool")
		d := newDriver(t, c, ns)
		other := newDriver(t, c, ns) // a second replica
		ctx := t.Context()
		var warm []driver.Instance
		for _, name := range []string{"mgx-pool-a", "mgx-pool-b"} {
			in, err := d.Create(ctx, driver.Spec{Name: name, Labels: map[string]string{driver.LabelPool: "1"}})
			require.NoError(t, err)
			warm = append(warm, in)
		}
		listed, err := d.Warm(ctx)
		require.NoError(t, err)
		require.Len(t, listed, 2)
		snapshot, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: d.poolSelector()})
		require.NoError(t, err)
		require.Len(t, snapshot.Items, 2)

		// The other replica claims the pod this one is about to try first.
		first := snapshot.Items[0].Name
		other.order = identity
		won, err := other.Claim(ctx, map[string]string{driver.LabelSession: "s-other", driver.LabelOwner: "bob"})
		require.NoError(t, err)
		require.Equal(t, first, won.Name)

		d.order = identity
		start := time.Now()
		got, conflicts, err := d.claimFrom(ctx, snapshot.Items, map[string]string{driver.LabelSession: "s-mine", driver.LabelOwner: "carol"})
		require.NoError(t, err)
		t.Logf("claim with one conflict took %s", time.Since(start).Round(time.Millisecond))
		require.Equal(t, 1, conflicts)
		require.Equal(t, snapshot.Items[1].Name, got.Name)
		require.Equal(t, "s-mine", got.Labels[driver.LabelSession])
		require.Empty(t, got.Labels[driver.LabelPool])

		// Each session owns its pod's claim now, and the winner's labels were not overwritten.
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, first, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "s-other", p.Labels[driver.LabelSession])
		for session, pod := range map[string]string{"s-other": first, "s-mine": got.Name} {
			claims, err := d.sessionClaims(ctx, session)
			require.NoError(t, err)
			require.Len(t, claims, 1, session)
			p, err := c.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, claims[0].Name, claimOf(p), session)
		}

		// The pool is empty: a claim finds nothing, and a claimed pod is never unwarmed.
		_, err = d.Claim(ctx, map[string]string{driver.LabelSession: "s-late"})
		require.ErrorIs(t, err, driver.ErrNotFound)
		for _, in := range warm {
			removed, err := d.Unwarm(ctx, in.ID)
			require.NoError(t, err)
			require.False(t, removed, in.Name)
		}
		left, err := d.Warm(ctx)
		require.NoError(t, err)
		require.Empty(t, left)
	})

	t.Run("unwarm removes an unclaimed pod and its fresh claim", func(t *testing.T) {
		ns := c.Namespace(t, "unwarm")
		d := newDriver(t, c, ns)
		ctx := t.Context()
		in, err := d.Create(ctx, driver.Spec{Name: "mgx-pool-c", Labels: map[string]string{driver.LabelPool: "1"}})
		require.NoError(t, err)
		pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, in.Name, metav1.GetOptions{})
		require.NoError(t, err)
		claim := claimOf(pod)
		removed, err := d.Unwarm(ctx, in.ID)
		require.NoError(t, err)
		require.True(t, removed)
		stacktest.Eventually(t, time.Minute, func() bool {
			_, perr := c.Client.CoreV1().Pods(ns).Get(ctx, in.Name, metav1.GetOptions{})
			_, cerr := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
			return apierrors.IsNotFound(perr) && apierrors.IsNotFound(cerr)
		}, "pod %s and claim %s deleted", in.Name, claim)
	})

	t.Run("two sandboxd replicas serve one session; reconciliation works both ways", func(t *testing.T) {
		ns := c.Namespace(t, "replicas")
		agents := c.RunAgents(t, ns, agent)
		defer agents.Stop()
		url := stacktest.SharedRedis(t)
		ctx := t.Context()
		manager := func(name string, createTimeout time.Duration) *sandbox.Manager {
			rdb, err := redisclient.New(ctx, url)
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			// Each replica has a driver of its own: nothing but the API server and Redis is shared.
			return sandbox.New(newDriver(t, c, ns), store.New(rdb), sandbox.Options{CreateTimeout: createTimeout, Replica: name})
		}
		replicas := []*sandbox.Manager{manager("replica-a", 2*time.Minute), manager("replica-b", 2*time.Minute)}
		session := uuid.NewString()

		rec, _, err := replicas[0].Launch(ctx, "alice", session)
		require.NoError(t, err, "%s", agents)
		require.NotEmpty(t, rec.Endpoint, "the record carries the pod endpoint")
		require.Empty(t, rec.Socket)
		for i := range 4 {
			res, err := replicas[i%2].Exec(ctx, "alice", session, sandbox.ExecSpec{Command: "echo turn >> turns && wc -l < turns"})
			require.NoError(t, err, "exec %d on replica %d", i, i%2)
			require.Equal(t, strconv.Itoa(i+1), strings.TrimSpace(string(res.Stdout)), "exec %d on replica %d", i, i%2)
		}

		// The pod vanishes behind sandboxd's back: reconciliation flags the record and cleans it; the
		// next launch resumes on the session's workspace.
		require.NoError(t, c.Client.CoreV1().Pods(ns).Delete(ctx, strings.Split(rec.InstanceID, "/")[0], metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		stacktest.Eventually(t, time.Minute, func() bool {
			_, err := replicas[1].Driver().Inspect(ctx, rec.InstanceID)
			return errors.Is(err, driver.ErrNotFound)
		}, "pod of %s gone", rec.InstanceName)
		reconciler := manager("reconciler", time.Second)
		rep, err := reconciler.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.RecordsCleaned, "%s", rep)
		_, err = replicas[1].Get(ctx, "alice", session)
		require.Error(t, err, "the record went with its pod")
		again, _, err := replicas[1].Launch(ctx, "alice", session)
		require.NoError(t, err, "%s", agents)
		require.NotEqual(t, rec.InstanceID, again.InstanceID)
		res, err := replicas[0].Exec(ctx, "alice", session, sandbox.ExecSpec{Command: "wc -l < turns"})
		require.NoError(t, err)
		require.Equal(t, "4", strings.TrimSpace(string(res.Stdout)), "resumed on the same workspace claim")

		// A pod no record references (a replica died between creating it and recording it) is removed
		// once it is older than the creation grace.
		orphan, err := replicas[0].Driver().Create(ctx, driver.Spec{Name: "mgx-sbx-ghost", Labels: map[string]string{driver.LabelSession: "ghost", driver.LabelOwner: "nobody"}})
		require.NoError(t, err)
		stacktest.Eventually(t, time.Minute, func() bool {
			rep, err := reconciler.Reconcile(ctx)
			return err == nil && rep.OrphansRemoved == 1
		}, "the orphan pod %s is removed", orphan.Name)
		_, err = replicas[0].Driver().Inspect(ctx, orphan.ID)
		require.ErrorIs(t, err, driver.ErrNotFound)
		_, err = replicas[0].Driver().Inspect(ctx, again.InstanceID)
		require.NoError(t, err, "the recorded pod stays")

		// Deleting the session removes its pod and its workspace claim.
		ok, err := replicas[1].Destroy(ctx, "alice", session, true)
		require.NoError(t, err)
		require.True(t, ok)
		stacktest.Eventually(t, time.Minute, func() bool {
			l, err := c.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: driver.LabelSession + "=" + session})
			return err == nil && len(l.Items) == 0
		}, "the workspace claim of %s is deleted", session)
	})

	t.Run("deployments sharing a namespace see only their own pods", func(t *testing.T) {
		ns := c.Namespace(t, "shared")
		a := newDriver(t, c, ns, func(o *Options) { o.DeploymentNamespace = "staging" })
		b := newDriver(t, c, ns, func(o *Options) { o.DeploymentNamespace = "ci" })
		ctx := t.Context()
		in, err := a.Create(ctx, driver.Spec{Name: "mgx-sbx-x", Labels: map[string]string{driver.LabelSession: "x"}})
		require.NoError(t, err)
		la, err := a.List(ctx)
		require.NoError(t, err)
		require.Len(t, la, 1)
		lb, err := b.List(ctx)
		require.NoError(t, err)
		require.Empty(t, lb)
		_, err = b.Inspect(ctx, in.ID)
		require.NoError(t, err, "Inspect is by id: any deployment may look")
		require.NoError(t, a.Remove(ctx, in.ID))
	})
}

func newDriver(t *testing.T, c *kubetest.Cluster, ns string, mods ...func(*Options)) *Driver {
	t.Helper()
	o := Options{
		Namespace: ns, RESTConfig: c.Config,
		Image: "mgx-sandbox:test", AgentImage: "mgx/sandboxd:test", AgentImagePath: "/usr/local/bin/sandbox-agent",
		PullPolicy: corev1.PullNever, User: "1000:1000", MilliCPU: 500, Memory: 256 << 20,
		StorageClass: kubetest.StorageClass, WorkspaceSize: resource.MustParse("1Gi"),
		AgentPort: c.AgentPort, DeploymentNamespace: "test-" + ns,
	}
	for _, m := range mods {
		m(&o)
	}
	d, err := New(t.Context(), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// requireHardened checks the pod as the API server stored it (in a namespace enforcing the restricted
// Pod Security Standard, which admitted it).
func requireHardened(t *testing.T, p *corev1.Pod) {
	t.Helper()
	require.False(t, *p.Spec.AutomountServiceAccountToken)
	require.False(t, *p.Spec.EnableServiceLinks)
	require.Equal(t, corev1.RestartPolicyNever, p.Spec.RestartPolicy)
	c := p.Spec.Containers[0]
	require.True(t, *c.SecurityContext.RunAsNonRoot)
	require.Equal(t, int64(1000), *c.SecurityContext.RunAsUser)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, c.SecurityContext.SeccompProfile.Type)
	require.Equal(t, "500m", c.Resources.Limits.Cpu().String())
	require.Equal(t, "256Mi", c.Resources.Limits.Memory().String())
	require.Equal(t, c.Resources.Limits, c.Resources.Requests, "Guaranteed QoS")
	require.Equal(t, corev1.PodQOSGuaranteed, p.Status.QOSClass)
}

// eventuallyExec runs command once the agent answers (the stand-in starts it shortly after the pod
// runs, as a kubelet would) and returns its stdout.
func eventuallyExec(t *testing.T, cli *agentclient.Client, command string, agents *kubetest.Agents) string {
	t.Helper()
	var lastErr error
	stacktest.Eventually(t, time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, lastErr = cli.Health(ctx)
		// A refusal is final: the secret is wrong, and waiting will not change it.
		return lastErr == nil || errors.Is(lastErr, agentapi.ErrDenied)
	}, "agent answers: %v\n%s", lastErr, agents)
	require.NoError(t, lastErr, "agent answers\n%s", agents)
	res, err := cli.Exec(t.Context(), agentapi.ExecRequest{Command: command, Timeout: 10 * time.Second, OutputLimit: 1 << 10})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, string(res.Stderr))
	return string(res.Stdout)
}

func claimOf(p *corev1.Pod) string {
	for _, v := range p.Spec.Volumes {
		if v.Name == volWorkspace && v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

func identity(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
