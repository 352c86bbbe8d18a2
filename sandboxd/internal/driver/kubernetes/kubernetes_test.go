package kubernetes

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/mgx-ai/mgx/pkg/redisclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/kubetest"
	"github.com/mgx-ai/mgx/sandboxd/internal/pool"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandbox"
	"github.com/mgx-ai/mgx/sandboxd/internal/store"
	"github.com/mgx-ai/mgx/sandboxd/internal/workspace"
)

func TestMain(m *testing.M) { stacktest.Main(m, stacktest.Binaries("sandbox-agent")) }

// The control plane takes tens of seconds to start on a loaded machine, so one serves every case; each
// case has a namespace of its own.
func TestDriver(t *testing.T) {
	c := kubetest.Start(t)
	agent := stacktest.Bin(t, "sandbox-agent")

	t.Run("lifecycle: a workspace is two claims that outlive every pod", func(t *testing.T) {
		ns := c.Namespace(t, "lifecycle")
		agents := c.RunAgents(t, ns, agent)
		defer agents.Stop()
		d := newDriver(t, c, ns)
		ctx := t.Context()
		// An owner id a label value cannot carry: the label holds a hash, the volume the raw value.
		const ws = "0123abcd"
		data, meta := instance.VolumeNames(ws)
		for _, v := range []struct{ name, role string }{{data, driver.VolumeData}, {meta, driver.VolumeMeta}} {
			vol, err := d.CreateVolume(ctx, v.name, map[string]string{driver.LabelWorkspace: ws, driver.LabelVolume: v.role, driver.LabelOwner: "alice@example.com"})
			require.NoError(t, err)
			require.Equal(t, "alice@example.com", vol.Labels[driver.LabelOwner])
			_, err = d.CreateVolume(ctx, v.name, nil)
			require.ErrorIs(t, err, driver.ErrVolumeExists, "a second claim of one name is the API server's refusal")
		}
		got, err := d.InspectVolume(ctx, meta)
		require.NoError(t, err)
		require.Equal(t, driver.VolumeMeta, got.Labels[driver.LabelVolume])
		require.Equal(t, ws, got.Labels[driver.LabelWorkspace])
		pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, meta, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "512Mi", pvc.Spec.Resources.Requests.Storage().String(), "the meta claim has its own size")
		vols, err := d.ListVolumes(ctx)
		require.NoError(t, err)
		require.Len(t, vols, 2)

		// A missing claim is refused before anything is made: an empty one would replace a lost workspace.
		_, err = d.Create(ctx, driver.Spec{Name: "mgx-sbx-lost", Data: "mgx-ws-nothing", Meta: "mgx-ws-nothing-meta"})
		require.ErrorIs(t, err, driver.ErrVolumeNotFound)
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, pods.Items)

		// Nor are claims of another workspace than the pod's.
		_, err = d.Create(ctx, driver.Spec{Name: "mgx-sbx-mixed", Labels: map[string]string{driver.LabelWorkspace: "another"}, Data: data, Meta: meta})
		require.ErrorContains(t, err, "cannot mount")

		// The pod's workspace label comes from its claims (RemoveVolume finds their pods by it).
		lbl := map[string]string{driver.LabelSession: "Sess-1"}
		spec := driver.Spec{Name: "mgx-sbx-Sess-1", Labels: lbl, Data: data, Meta: meta, Fresh: true}
		inst, err := d.Create(ctx, spec)
		require.NoError(t, err)
		require.True(t, inst.Running)
		require.Equal(t, ws, inst.WorkspaceID)
		require.Equal(t, "Sess-1", inst.Labels[driver.LabelSession])
		pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, inst.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, pod.Status.PodIP+":"+strconv.Itoa(c.AgentPort), inst.Endpoint)
		requireHardened(t, pod)
		require.Equal(t, map[string]string{workspace.Root: data, MetaPath: meta}, claimMounts(pod))

		// The agent is reached at the pod endpoint with the secret only the pod's Secret holds.
		cli := agentclient.NewNetwork(inst.Endpoint, dialer(d, inst), func(ctx context.Context) ([]byte, error) { return d.AgentSecret(ctx, inst) })
		defer cli.Close()
		eventuallyExec(t, cli, "echo kept > notes.txt && pwd", agents)
		wrong := agentclient.NewNetwork(inst.Endpoint, dialer(d, inst), func(context.Context) ([]byte, error) { return []byte(strings.Repeat("0", 64)), nil })
		_, err = wrong.Health(ctx)
		require.ErrorIs(t, err, agentapi.ErrDenied)
		wrong.Close()

		list, err := d.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, inst.ID, list[0].ID)

		// A mounted claim cannot go (the contract of every driver; the API server alone would only
		// defer its deletion).
		require.ErrorContains(t, d.RemoveVolume(ctx, data), "in use")

		// Reaping: the pod and its secret go, the claims stay.
		require.NoError(t, d.Remove(ctx, inst.ID))
		_, err = d.Inspect(ctx, inst.ID)
		require.ErrorIs(t, err, driver.ErrNotFound)
		stacktest.Eventually(t, time.Minute, func() bool {
			_, err := c.Client.CoreV1().Secrets(ns).Get(ctx, inst.Name+"-agent", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, "the agent secret of %s is deleted with its pod", inst.Name)
		for _, v := range []string{data, meta} {
			_, err = d.InspectVolume(ctx, v)
			require.NoError(t, err, "reaping keeps the claim %s", v)
		}

		// Resume: a new pod (a new name, so it never waits for the old one's) on the same claims.
		spec.Fresh = false
		again, err := d.Create(ctx, spec)
		require.NoError(t, err)
		require.NotEqual(t, inst.Name, again.Name)
		pod, err = c.Client.CoreV1().Pods(ns).Get(ctx, again.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, map[string]string{workspace.Root: data, MetaPath: meta}, claimMounts(pod))
		cli2 := agentclient.NewNetwork(again.Endpoint, dialer(d, again), func(ctx context.Context) ([]byte, error) { return d.AgentSecret(ctx, again) })
		defer cli2.Close()
		out := eventuallyExec(t, cli2, "cat notes.txt", agents)
		require.Equal(t, "kept\n", out)
		// The old pod's secret never opens the new pod.
		_, err = d.AgentSecret(ctx, driver.Instance{ID: again.Name + "/" + "not-its-uid", Name: again.Name})
		require.Error(t, err)

		// Deleting the session: the pod, then its claims.
		require.NoError(t, d.Remove(ctx, again.ID))
		for _, v := range []string{data, meta} {
			require.NoError(t, d.RemoveVolume(ctx, v))
			require.NoError(t, d.RemoveVolume(ctx, v), "a missing claim is no error")
		}
		stacktest.Eventually(t, time.Minute, func() bool {
			l, err := c.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0
		}, "the workspace claims are deleted")
		_, err = d.InspectVolume(ctx, data)
		require.ErrorIs(t, err, driver.ErrVolumeNotFound)
		list, err = d.List(ctx)
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("a sandboxd outside the cluster reaches agents by port-forward through the API server", func(t *testing.T) {
		if c.Real {
			t.Skip("the real-cluster suite reaches pods by their IPs; port-forward is covered by the simulated cluster")
		}
		ns := c.Namespace(t, "forward")
		agents := c.RunAgents(t, ns, agent)
		defer agents.Stop()
		// Pod IPs unreachable from this sandboxd: only the API server's port-forward leads to the agents.
		d := newDriver(t, c, ns, func(o *Options) { o.AgentRoute = RoutePortForward })
		ctx := t.Context()
		fleet := instance.New(d, instance.Options{CreateTimeout: 2 * time.Minute})
		inst, err := fleet.Create(ctx, driver.Spec{Name: "mgx-sbx-forward", Labels: map[string]string{driver.LabelSession: "forward"}})
		require.NoError(t, err, "%s", agents)
		cli := fleet.Client(inst)
		out := agentclient.Output{Limit: 1 << 20}
		res, err := cli.Exec(ctx, agentapi.ExecRequest{Command: "head -c 300000 /dev/zero | tr '\\0' x; echo; echo through the tunnel >&2", Timeout: 20 * time.Second}, out.Write)
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode)
		require.Len(t, strings.TrimSpace(string(out.Stdout)), 300000, "a large output crosses the tunnel whole")
		require.Equal(t, "through the tunnel\n", string(out.Stderr))
		// Several connections at once, each its own tunnel; the pod's address plays no part (one where
		// nothing listens stands for a pod network this process cannot reach).
		unreachable := inst
		unreachable.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(stacktest.Port(t)))
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				c := agentclient.NewNetwork(unreachable.Endpoint, dialer(d, unreachable), func(ctx context.Context) ([]byte, error) { return d.AgentSecret(ctx, inst) })
				defer c.Close()
				_, errs[i] = c.Health(hctx)
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		// The handshake runs inside the tunnel: a wrong secret is refused there too.
		wrong := agentclient.NewNetwork(inst.Endpoint, dialer(d, inst), func(context.Context) ([]byte, error) { return []byte(strings.Repeat("0", 64)), nil })
		_, err = wrong.Health(ctx)
		require.ErrorIs(t, err, agentapi.ErrDenied)
		wrong.Close()
		// A pod that is gone: an error, not a hang.
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err = d.DialAgent(dctx, driver.Instance{ID: "mgx-sbx-nothing-xxxxx/uid", Name: "mgx-sbx-nothing-xxxxx"})
		require.Error(t, err)
		require.NoError(t, dctx.Err())
		fleet.Remove(ctx, inst)
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

	t.Run("two sandboxd replicas and a warm pool serve one session; reconciliation works both ways", func(t *testing.T) {
		ns := c.Namespace(t, "replicas")
		agents := c.RunAgents(t, ns, agent)
		defer agents.Stop()
		url := stacktest.SharedRedis(t)
		ctx := t.Context()
		type replica struct {
			m     *sandbox.Manager
			fleet *instance.Fleet
			st    *store.Store
		}
		// Each replica has a driver of its own: nothing but the API server and Redis is shared.
		newReplica := func(name string, createTimeout time.Duration, warm sandbox.Pool) replica {
			rdb, err := redisclient.New(ctx, url)
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			fleet := instance.New(newDriver(t, c, ns), instance.Options{CreateTimeout: createTimeout})
			st := store.New(rdb)
			m, err := sandbox.New(fleet, st, warm, sandbox.Options{
				IdleTimeout: time.Hour, CreateTimeout: createTimeout, ExecTimeout: 20 * time.Second, MaxExecTimeout: time.Minute,
				OutputLimit: 1 << 16, VolumeGrace: createTimeout, Namespace: "test-" + ns, Replica: name,
			})
			require.NoError(t, err)
			return replica{m: m, fleet: fleet, st: st}
		}
		a := newReplica("replica-a", 2*time.Minute, nil)
		// Replica b keeps a warm pool of one: a pod on a fresh pair of claims, waiting in Redis.
		rdb, err := redisclient.New(ctx, url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = rdb.Close() })
		poolFleet := instance.New(newDriver(t, c, ns), instance.Options{CreateTimeout: 2 * time.Minute})
		warm := pool.New(poolFleet, store.New(rdb), pool.Options{Size: 1, Replica: "replica-b", CreateTimeout: 2 * time.Minute})
		pctx, stopPool := context.WithCancel(ctx)
		poolDone := make(chan struct{})
		go func() { defer close(poolDone); warm.Run(pctx) }()
		defer func() { stopPool(); <-poolDone }()
		b := newReplica("replica-b", 2*time.Minute, warm)
		stacktest.Eventually(t, 2*time.Minute, func() bool {
			n, err := b.st.PoolSize(ctx)
			return err == nil && n == 1
		}, "the warm pool fills\n%s", agents)
		vols, err := b.fleet.ListVolumes(ctx)
		require.NoError(t, err)
		require.Len(t, vols, 2, "the warm pod's workspace is two claims")

		session := uuid.NewString()
		sb, logs, err := b.m.Launch(ctx, "alice", session)
		require.NoError(t, err, "%s", agents)
		require.Contains(t, strings.Join(logs, "\n"), "claimed warm sandbox")
		stopPool() // the rest is about the session: no refill beside it
		<-poolDone
		inst, err := a.fleet.Inspect(ctx, sb.InstanceID)
		require.NoError(t, err)
		require.NotEmpty(t, inst.Endpoint, "the agent is reached at the pod")
		require.Equal(t, session, inst.Labels[driver.LabelSession], "the API server holds the warm pod's claim too")
		require.Equal(t, "alice", inst.Labels[driver.LabelOwner])
		replicas := []*sandbox.Manager{a.m, b.m}
		for i := range 4 {
			res, err := replicas[i%2].Exec(ctx, "alice", session, sandbox.ExecSpec{Command: "echo turn >> turns && wc -l < turns"})
			require.NoError(t, err, "exec %d on replica %d", i, i%2)
			require.Equal(t, strconv.Itoa(i+1), strings.TrimSpace(string(res.Stdout)), "exec %d on replica %d", i, i%2)
		}
		// The checkpoint history lives in the meta claim, beside the files.
		cp, created, err := a.m.CreateCheckpoint(ctx, "alice", session, sandbox.CheckpointInfo{Kind: sandbox.CheckpointManual, Message: "four turns"})
		require.NoError(t, err)
		require.True(t, created)
		wsInfo, err := a.m.GetWorkspace(ctx, "alice", session)
		require.NoError(t, err)
		require.Equal(t, inst.WorkspaceID, wsInfo.ID, "the session's workspace is the warm pod's")
		require.Equal(t, sandbox.WorkspaceOK, wsInfo.State)

		// The pod vanishes behind sandboxd's back: reconciliation flags the record and cleans it; the
		// next launch resumes on the session's claims.
		require.NoError(t, c.Client.CoreV1().Pods(ns).Delete(ctx, strings.Split(sb.InstanceID, "/")[0], metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		stacktest.Eventually(t, time.Minute, func() bool {
			_, err := b.fleet.Inspect(ctx, sb.InstanceID)
			return errors.Is(err, driver.ErrNotFound)
		}, "pod of %s gone", sb.InstanceName)
		reconciler := newReplica("reconciler", time.Second, nil)
		rep, err := reconciler.m.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.RecordsCleaned, "%+v", rep)
		again, _, err := b.m.Launch(ctx, "alice", session)
		require.NoError(t, err, "%s", agents)
		require.NotEqual(t, sb.InstanceID, again.InstanceID)
		resumed, err := a.fleet.Inspect(ctx, again.InstanceID)
		require.NoError(t, err)
		require.Equal(t, map[string]string{driver.LabelSession: session, driver.LabelOwner: "alice", driver.LabelWorkspace: wsInfo.ID},
			map[string]string{driver.LabelSession: resumed.Labels[driver.LabelSession], driver.LabelOwner: resumed.Labels[driver.LabelOwner], driver.LabelWorkspace: resumed.Labels[driver.LabelWorkspace]},
			"the pod's labels name its session, owner and workspace")
		res, err := a.m.Exec(ctx, "alice", session, sandbox.ExecSpec{Command: "wc -l < turns"})
		require.NoError(t, err)
		require.Equal(t, "4", strings.TrimSpace(string(res.Stdout)), "resumed on the same workspace claims")
		cps, _, err := b.m.ListCheckpoints(ctx, "alice", session, 10, "")
		require.NoError(t, err)
		require.Len(t, cps, 1, "the new pod mounts the same meta claim")
		require.Equal(t, cp.ID, cps[0].ID)

		// A pod no record references (a replica died between creating it and recording it) is removed
		// once it is older than the creation grace.
		orphan, err := a.fleet.Create(ctx, driver.Spec{Name: "mgx-sbx-ghost", Labels: map[string]string{driver.LabelSession: "ghost"}})
		require.NoError(t, err)
		stacktest.Eventually(t, time.Minute, func() bool {
			rep, err := reconciler.m.Reconcile(ctx)
			return err == nil && rep.OrphansRemoved == 1
		}, "the orphan pod %s is removed", orphan.Name)
		_, err = a.fleet.Inspect(ctx, orphan.ID)
		require.ErrorIs(t, err, driver.ErrNotFound)
		_, err = a.fleet.Inspect(ctx, again.InstanceID)
		require.NoError(t, err, "the recorded pod stays")

		// A claim lost while the session slept answers WORKSPACE_LOST, never an empty replacement.
		_, err = a.m.Destroy(ctx, "alice", session, false)
		require.NoError(t, err)
		data, _ := instance.VolumeNames(wsInfo.ID)
		require.NoError(t, c.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, data, metav1.DeleteOptions{}))
		_, _, err = b.m.Launch(ctx, "alice", session)
		require.ErrorIs(t, err, sandbox.ErrWorkspaceLost)
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, pods.Items, "no pod on a lost workspace")

		// Deleting the session removes what is left of its workspace.
		_, err = a.m.Destroy(ctx, "alice", session, true)
		require.NoError(t, err)
		stacktest.Eventually(t, time.Minute, func() bool {
			l, err := c.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: driver.LabelWorkspace + "=" + wsInfo.ID})
			return err == nil && len(l.Items) == 0
		}, "the workspace claims of %s are deleted", session)
	})

	t.Run("a warm pod goes to one claim: a stale claim meets a conflict and looks again", func(t *testing.T) {
		ns := c.Namespace(t, "claims")
		ctx := t.Context()
		// Each replica's requests as the API server answered them.
		type call struct {
			method string
			status int
		}
		newReplica := func() (*Driver, func() []call) {
			var mu sync.Mutex
			var calls []call
			d := newDriver(t, c, ns, func(o *Options) {
				cfg := rest.CopyConfig(c.Config)
				cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
					return roundTripper(func(r *http.Request) (*http.Response, error) {
						res, err := rt.RoundTrip(r)
						if err == nil && strings.Contains(r.URL.Path, "/pods/") {
							mu.Lock()
							calls = append(calls, call{r.Method, res.StatusCode})
							mu.Unlock()
						}
						return res, err
					})
				}
				o.RESTConfig = cfg
			})
			return d, func() []call {
				mu.Lock()
				defer mu.Unlock()
				out := calls
				calls = nil
				return out
			}
		}
		a, callsA := newReplica()
		b, _ := newReplica()
		warm := func(name string) driver.Instance {
			in, err := a.Create(ctx, driver.Spec{Name: name, Labels: map[string]string{driver.LabelPool: "1", driver.LabelWorkspace: name}})
			require.NoError(t, err)
			require.NotEmpty(t, in.Version)
			_, had := in.Labels[driver.LabelSession]
			require.False(t, had, "a warm pod is no session's")
			return in
		}

		// The pod changes after the pool recorded it: the recorded version is stale.
		in := warm("mgx-pool-stale")
		pod, err := c.Client.CoreV1().Pods(ns).Patch(ctx, in.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"1"}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		require.NotEqual(t, in.Version, pod.ResourceVersion)
		callsA()
		got, err := a.Claim(ctx, in, "user-a", "session-a")
		require.NoError(t, err)
		require.Equal(t, "session-a", got.Labels[driver.LabelSession])
		require.Equal(t, in.ID, got.ID)
		require.Equal(t, []call{{http.MethodPatch, http.StatusConflict}, {http.MethodGet, http.StatusOK}, {http.MethodPatch, http.StatusOK}}, callsA(),
			"the stale claim is refused by the API server, looked at again and retried")

		// A second claim of the same entry (a pop Redis handed out twice): the conflict, then the other
		// session's label, and the pod stays session-a's.
		_, err = b.Claim(ctx, in, "user-b", "session-b")
		require.ErrorIs(t, err, driver.ErrClaimed)
		_, err = b.Claim(ctx, got, "user-b", "session-b")
		require.ErrorIs(t, err, driver.ErrClaimed, "with the current version too")
		again, err := a.Claim(ctx, in, "user-a", "session-a")
		require.NoError(t, err, "claiming one's own pod again is no conflict")
		require.Equal(t, got.ID, again.ID)
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, in.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "session-a", p.Labels[driver.LabelSession])
		// A session id no label value can carry: hashed in the label, raw in the annotation.
		long := warm("mgx-pool-long")
		longID := "user@example.com/" + strings.Repeat("x", 80)
		gotLong, err := a.Claim(ctx, long, "alice@example.com", longID)
		require.NoError(t, err)
		require.Equal(t, longID, gotLong.Labels[driver.LabelSession])
		require.Equal(t, "alice@example.com", gotLong.Labels[driver.LabelOwner], "the owner too")
		_, err = a.Claim(ctx, driver.Instance{ID: in.Name + "/not-its-uid", Name: in.Name, Version: p.ResourceVersion}, "user-c", "session-c")
		require.ErrorIs(t, err, driver.ErrNotFound, "a namesake is never claimed")

		// Replicas racing for one fresh pod with the same recorded version: exactly one wins.
		race := warm("mgx-pool-race")
		drivers := []*Driver{a, b, newDriver(t, c, ns), newDriver(t, c, ns)}
		var wg sync.WaitGroup
		errs := make([]error, len(drivers))
		for i, d := range drivers {
			wg.Go(func() { _, errs[i] = d.Claim(ctx, race, "racer", "racer-"+strconv.Itoa(i)) })
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, driver.ErrClaimed, "racer %d", i)
		}
		require.Equal(t, 1, won, "%v", errs)

		// Through the pool: an entry handed out twice is left to its session and the next one taken.
		url := stacktest.SharedRedis(t)
		rdb, err := redisclient.New(ctx, url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = rdb.Close() })
		st := store.New(rdb)
		fleet := instance.New(b, instance.Options{CreateTimeout: time.Minute})
		fresh := warm("mgx-pool-fresh")
		require.NoError(t, st.PoolAdd(ctx, fleet.DriverName(), in))
		require.NoError(t, st.PoolAdd(ctx, fleet.DriverName(), fresh))
		warmPool := pool.New(fleet, st, pool.Options{Size: 0, Replica: "b", CreateTimeout: time.Minute})
		claimed, ok := warmPool.Claim(ctx, "user-d", "session-d")
		require.True(t, ok)
		require.Equal(t, fresh.ID, claimed.ID)
		require.Equal(t, "mgx-pool-fresh", claimed.WorkspaceID)
		require.Equal(t, "session-d", claimed.Labels[driver.LabelSession])
		require.Equal(t, "user-d", claimed.Labels[driver.LabelOwner])
		p, err = c.Client.CoreV1().Pods(ns).Get(ctx, in.Name, metav1.GetOptions{})
		require.NoError(t, err, "another session's pod is never discarded by a losing claim")
		require.Equal(t, "session-a", p.Labels[driver.LabelSession])
		// Whichever entry the pop took first, the stale one is passed over by this claim or the next.
		_, ok = warmPool.Claim(ctx, "user-e", "session-e")
		require.False(t, ok, "nothing claimable is left")
		n, err := st.PoolSize(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("deployments sharing a namespace see only their own pods and claims", func(t *testing.T) {
		ns := c.Namespace(t, "shared")
		a := newDriver(t, c, ns, func(o *Options) { o.DeploymentNamespace = "staging" })
		b := newDriver(t, c, ns, func(o *Options) { o.DeploymentNamespace = "ci" })
		ctx := t.Context()
		in, err := a.Create(ctx, driver.Spec{Name: "mgx-sbx-x", Labels: map[string]string{driver.LabelSession: "x"}})
		require.NoError(t, err)
		_, err = a.CreateVolume(ctx, "mgx-ws-x", map[string]string{driver.LabelVolume: driver.VolumeData})
		require.NoError(t, err)
		la, err := a.List(ctx)
		require.NoError(t, err)
		require.Len(t, la, 1)
		lb, err := b.List(ctx)
		require.NoError(t, err)
		require.Empty(t, lb)
		va, err := a.ListVolumes(ctx)
		require.NoError(t, err)
		require.Len(t, va, 1)
		vb, err := b.ListVolumes(ctx)
		require.NoError(t, err)
		require.Empty(t, vb)
		_, err = b.Inspect(ctx, in.ID)
		require.NoError(t, err, "Inspect is by id: any deployment may look")
		require.NoError(t, a.Remove(ctx, in.ID))
		require.NoError(t, a.RemoveVolume(ctx, "mgx-ws-x"))
	})
}

func newDriver(t *testing.T, c *kubetest.Cluster, ns string, mods ...func(*Options)) *Driver {
	t.Helper()
	o := Options{
		Namespace: ns, RESTConfig: c.Config,
		Image: c.SandboxImage, AgentImage: c.AgentImage, AgentImagePath: "/usr/local/bin/sandbox-agent",
		PullPolicy: c.PullPolicy, User: "1000:1000", MilliCPU: 500, Memory: 256 << 20,
		StorageClass: c.StorageClass, WorkspaceSize: resource.MustParse("1Gi"), MetaSize: resource.MustParse("512Mi"),
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
	out := agentclient.Output{Limit: 1 << 10}
	res, err := cli.Exec(t.Context(), agentapi.ExecRequest{Command: command, Timeout: 10 * time.Second}, out.Write)
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, string(out.Stderr))
	return string(out.Stdout)
}

// claimMounts maps the sandbox container's mount paths to the claims mounted there.
func claimMounts(p *corev1.Pod) map[string]string {
	claims := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims[v.Name] = v.PersistentVolumeClaim.ClaimName
		}
	}
	out := map[string]string{}
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if c, ok := claims[m.Name]; ok {
			out[m.MountPath] = c
		}
	}
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// dialer reaches inst's agent by the driver's route, as sandboxd does.
func dialer(d *Driver, inst driver.Instance) agentclient.DialFunc {
	return func(ctx context.Context) (net.Conn, error) { return d.DialAgent(ctx, inst) }
}
