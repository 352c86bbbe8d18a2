package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/agentclient"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

func TestDockerHardening(t *testing.T) {
	t.Parallel()
	cli := sandboxtest.Docker(t)
	e := start(t, "docker", map[string]string{"SANDBOX_CPU": "0.5"})
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	l, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)

	c, err := cli.ContainerInspect(t.Context(), l.GetSandbox().GetContainerId())
	require.NoError(t, err)
	hc := c.HostConfig
	require.Equal(t, "1000:1000", c.Config.User)
	require.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
	require.Contains(t, hc.SecurityOpt, "no-new-privileges")
	for _, o := range hc.SecurityOpt {
		require.NotContains(t, o, "unconfined")
	}
	require.False(t, hc.Privileged)
	require.EqualValues(t, 128, *hc.PidsLimit)
	require.EqualValues(t, 256<<20, hc.Memory)
	require.Equal(t, hc.Memory, hc.MemorySwap, "no swap beyond the memory limit")
	require.EqualValues(t, 5e8, hc.NanoCPUs)
	require.Equal(t, "json-file", hc.LogConfig.Type)
	require.Equal(t, "1m", hc.LogConfig.Config["max-size"])
	require.Empty(t, hc.PortBindings)
	require.False(t, hc.PublishAllPorts)
	for _, b := range hc.Binds {
		require.NotContains(t, b, "docker.sock")
	}
	require.Equal(t, sid, c.Config.Labels[driver.LabelSession])
	require.Equal(t, "1", c.Config.Labels[driver.LabelManaged])

	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; cat /proc/1/cmdline | tr '\\0' ' '"})
	require.NoError(t, err)
	require.Contains(t, res.GetStdout(), "1000\n")
	require.Contains(t, res.GetStdout(), "CapEff:\t0000000000000000")
	require.Contains(t, res.GetStdout(), "NoNewPrivs:\t1")
	require.Contains(t, res.GetStdout(), "/.mgx/bin/sandbox-agent", "the agent is PID 1")

	// The agent binary is mounted read-only and the Docker socket is absent.
	res, err = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo x > /.mgx/bin/sandbox-agent; ls /var/run/docker.sock; echo done"})
	require.NoError(t, err)
	require.Contains(t, res.GetStderr(), "Read-only file system")
	require.Contains(t, res.GetStderr(), "No such file")

	// Orphans are reaped by the agent as PID 1: no zombie is left.
	_, err = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "(sleep 0.1 &) ; true"})
	require.NoError(t, err)
	eventually(t, 5*time.Second, func() bool {
		r, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"})
		return err == nil && strings.TrimSpace(r.GetStdout()) == "0"
	}, "zombies left behind")
}

// A fork bomb and a memory hog in one sandbox must not starve another.
func TestDockerNoisyNeighbour(t *testing.T) {
	e := start(t, "docker", nil)
	ctx := as(t.Context(), "user-a")
	noisy, quiet := newSession(), newSession()
	for _, sid := range []string{noisy, quiet} {
		_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.NoError(t, err)
	}
	for _, bomb := range []struct{ name, cmd string }{
		{"fork bomb", `b(){ b | b; }; b`},
		{"memory hog", `x=a; while true; do x="$x$x"; done`},
	} {
		t.Run(bomb.name, func(t *testing.T) {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Bounded: its own timeout kills its whole process group.
				_, _ = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: noisy, Command: bomb.cmd, Timeout: 4})
			}()
			time.Sleep(500 * time.Millisecond) // let it ramp up
			worst := time.Duration(0)
			for i := 0; i < 10; i++ {
				begin := time.Now()
				res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: quiet, Command: "echo ok"})
				require.NoError(t, err)
				require.Equal(t, "ok\n", res.GetStdout())
				worst = max(worst, time.Since(begin))
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("%s: worst exec latency in the quiet sandbox %s", bomb.name, worst)
			require.Less(t, worst, 2*time.Second)
			wg.Wait()
			// The noisy sandbox recovers once the bomb's group is killed.
			eventually(t, 15*time.Second, func() bool {
				res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: noisy, Command: "echo alive", Timeout: 5})
				return err == nil && res.GetStdout() == "alive\n"
			}, "noisy sandbox did not recover")
		})
	}
}

// The reaper destroys an idle sandbox within timeout+interval, and never one
// whose command is still running.
func TestDockerReaper(t *testing.T) {
	e := start(t, "docker", map[string]string{"SANDBOX_IDLE_TIMEOUT": "2", "SANDBOX_GC_INTERVAL": "1"})
	ctx := as(t.Context(), "user-a")
	idle, busy := newSession(), newSession()
	for _, sid := range []string{idle, busy} {
		_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.NoError(t, err)
	}
	begin := time.Now()
	execDone := make(chan error, 1)
	go func() {
		res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: busy, Command: "sleep 6; echo finished"})
		if err == nil && res.GetStdout() != "finished\n" {
			err = fmt.Errorf("unexpected output %q", res.GetStdout())
		}
		execDone <- err
	}()
	eventually(t, 2*time.Second+time.Second+3*time.Second, func() bool {
		_, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: idle})
		return code(err) == codes.NotFound
	}, "idle sandbox not reaped within timeout+interval")
	t.Logf("idle sandbox reaped after %s", time.Since(begin).Round(10*time.Millisecond))
	insts, err := e.app.Driver.List(t.Context())
	require.NoError(t, err)
	for _, in := range insts {
		require.NotEqual(t, idle, in.Labels[driver.LabelSession], "container of the reaped sandbox still exists")
	}
	// The busy one survives its 6 s command although idle timeout is 2 s.
	require.NoError(t, <-execDone)
	_, err = e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: busy})
	require.NoError(t, err)
	// ... and is reaped once idle after it.
	eventually(t, 8*time.Second, func() bool {
		_, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: busy})
		return code(err) == codes.NotFound
	}, "busy sandbox not reaped after its command")
}

// kill -9 of sandboxd, damage while it is down, restart: live sandboxes are
// re-adopted, dead ones' records cleaned, orphan containers removed.
func TestDockerCrashRecovery(t *testing.T) {
	sandboxtest.Docker(t)
	bin := stacktest.Bin(t, "sandboxd")
	vars := baseEnv(t, "docker", stacktest.Redis(t))
	// The orphan grace: short, yet long enough for a launch (two volumes and a container) on a
	// loaded machine.
	vars["SANDBOX_CREATE_TIMEOUT"] = "6"
	vars["SANDBOXD_LISTEN"] = stacktest.Addr(t)
	vars["SANDBOXD_PREVIEW_LISTEN"] = stacktest.Addr(t)

	proc := stacktest.Start(t, "sandboxd", bin, vars)
	conn, err := grpcclient.Dial(vars["SANDBOXD_LISTEN"], grpcclient.Options{InternalToken: token})
	require.NoError(t, err)
	defer conn.Close()
	sb := sandboxdv1.NewSandboxServiceClient(conn)
	ctx := as(t.Context(), "user-a")
	keep, lose := newSession(), newSession()
	ids := map[string]string{}
	cli := sandboxtest.Docker(t)
	t.Cleanup(func() {
		for _, sid := range []string{keep, lose} {
			cs, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", driver.LabelSession+"="+sid))})
			for _, c := range cs {
				_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
			}
		}
		// The sessions' workspaces outlive their containers by design; this test's namespace's go.
		vs, _ := cli.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", driver.LabelNamespace+"="+vars["SANDBOXD_NAMESPACE"]))})
		for _, v := range vs.Volumes {
			_ = cli.VolumeRemove(context.Background(), v.Name, false)
		}
	})
	stacktest.WaitGRPC(t, vars["SANDBOXD_LISTEN"], proc.Done())
	for _, sid := range []string{keep, lose} {
		l, err := sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		require.NoError(t, err)
		ids[sid] = l.GetSandbox().GetContainerId()
	}
	_, err = sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: keep, Command: "echo state > kept.txt"})
	require.NoError(t, err)
	_, err = sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: lose, Command: "mkdir -p app && echo work > app/lost.txt"})
	require.NoError(t, err)

	proc.Kill()

	// While it is down: one sandbox's container dies, and an unrecorded
	// container appears (as if sandboxd crashed between create and record).
	require.NoError(t, cli.ContainerRemove(t.Context(), ids[lose], container.RemoveOptions{Force: true}))
	orphan, err := cli.ContainerCreate(t.Context(), &container.Config{
		Image: sandboxtest.Image, Cmd: []string{"sleep", "600"},
		Labels: map[string]string{driver.LabelManaged: "1", driver.LabelSession: newSession(), driver.LabelNamespace: vars["SANDBOXD_NAMESPACE"]},
	}, nil, nil, nil, "mgx-sbx-orphan-"+newSession()[:8])
	require.NoError(t, err)
	require.NoError(t, cli.ContainerStart(t.Context(), orphan.ID, container.StartOptions{}))
	time.Sleep(6100 * time.Millisecond) // older than the creation grace period

	stacktest.Start(t, "sandboxd (restarted)", bin, vars)
	eventually(t, 20*time.Second, func() bool {
		_, err := cli.ContainerInspect(t.Context(), orphan.ID)
		return err != nil && strings.Contains(err.Error(), "No such container")
	}, "orphan container not removed")
	eventually(t, 10*time.Second, func() bool {
		list, err := sb.ListSandboxes(ctx, &sandboxdv1.ListSandboxesRequest{})
		return err == nil && len(list.GetSandboxes()) == 1 && list.GetSandboxes()[0].GetSessionId() == keep
	}, "stale record not cleaned")
	// ... and the dead sandbox's run directory on the host is pruned.
	eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(vars["SANDBOXD_RUN_DIR"], "mgx-sbx-"+lose))
		return os.IsNotExist(err)
	}, "run dir of the dead sandbox not pruned")
	// The survivor was re-adopted, not re-created: same container, same files.
	g, err := sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: keep})
	require.NoError(t, err)
	require.Equal(t, ids[keep], g.GetSandbox().GetContainerId())
	res, err := sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: keep, Command: "cat kept.txt"})
	require.NoError(t, err)
	require.Equal(t, "state\n", res.GetStdout())
	// The lost one comes back on demand for its owner, on its workspace: its files are there.
	res, err = sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: lose, Command: "cat app/lost.txt"})
	require.NoError(t, err)
	require.Equal(t, "work\n", res.GetStdout())
	_, err = sb.DestroyAllSandboxes(ctx, &sandboxdv1.DestroyAllSandboxesRequest{})
	require.NoError(t, err)
}

func TestWarmPool(t *testing.T) {
	e := start(t, "docker", map[string]string{"SANDBOX_POOL_SIZE": "2"})
	ctx := as(t.Context(), "user-a")
	eventually(t, 20*time.Second, func() bool {
		n, err := e.app.Store.PoolSize(t.Context())
		return err == nil && n == 2
	}, "pool not filled")
	begin := time.Now()
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo warm"})
	require.NoError(t, err)
	require.Equal(t, "warm\n", res.GetStdout())
	t.Logf("warm create-to-first-exec: %s", time.Since(begin))
	g, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(g.GetSandbox().GetContainerName(), "mgx-pool-"))
	// The warm sandbox's fresh workspace became the session's.
	w, err := e.ws.GetWorkspace(ctx, &sandboxdv1.GetWorkspaceRequest{SessionId: sid})
	require.NoError(t, err)
	require.Equal(t, "ok", w.GetWorkspace().GetState())
	eventually(t, 20*time.Second, func() bool {
		n, err := e.app.Store.PoolSize(t.Context())
		return err == nil && n == 2
	}, "pool not refilled")
	// A reconcile leaves both the claimed sandbox and the pool alone.
	rep, err := e.app.Manager.Reconcile(t.Context())
	require.NoError(t, err)
	require.Zero(t, rep.OrphansRemoved+rep.RecordsCleaned+rep.PoolPruned, rep.String())

	// A graceful stop takes this replica's unclaimed warm sandboxes with it;
	// the session's sandbox stays (the next sandboxd re-adopts it).
	e.stop()
	cli := sandboxtest.Docker(t)
	cs, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", driver.LabelNamespace+"="+e.vars["SANDBOXD_NAMESPACE"]))})
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, "/"+g.GetSandbox().GetContainerName(), cs[0].Names[0])
	// ... and so do the session's workspace volumes; the unclaimed ones went with their sandboxes.
	vs, err := cli.VolumeList(t.Context(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", driver.LabelNamespace+"="+e.vars["SANDBOXD_NAMESPACE"]))})
	require.NoError(t, err)
	var names []string
	for _, v := range vs.Volumes {
		names = append(names, v.Name)
	}
	require.ElementsMatch(t, []string{w.GetWorkspace().GetVolume(), w.GetWorkspace().GetVolume() + "-meta"}, names)
	require.NoError(t, cli.ContainerRemove(t.Context(), cs[0].ID, container.RemoveOptions{Force: true}))
}

// Without the product image (no registry here), sandboxd falls back to the
// dev image, loudly, instead of failing every launch.
func TestDockerImageFallback(t *testing.T) {
	t.Parallel()
	e := start(t, "docker", map[string]string{"SANDBOX_IMAGE": "mgx-no-such-image:latest", "SANDBOX_IMAGE_FALLBACK": sandboxtest.Image})
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo ok"})
	require.NoError(t, err)
	require.Equal(t, "ok\n", res.GetStdout())
}

// Sandboxes share no network path to each other: a server listening on all
// addresses in one is unreachable from another (it stays reachable from
// inside its own sandbox and, through the preview tunnel, for its owner).
func TestDockerSandboxesCannotReachEachOther(t *testing.T) {
	t.Parallel()
	cli := sandboxtest.Docker(t)
	e := start(t, "docker", nil)
	ctx := as(t.Context(), "user-a")
	a, b := newSession(), newSession()
	la, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: a})
	require.NoError(t, err)
	_, err = e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: b})
	require.NoError(t, err)
	_, err = e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: a, Name: "web", Command: "echo hi > index.html; exec httpd -f -p 0.0.0.0:8080 -h ."})
	require.NoError(t, err)

	c, err := cli.ContainerInspect(t.Context(), la.GetSandbox().GetContainerId())
	require.NoError(t, err)
	nw, ok := c.NetworkSettings.Networks["mgx-sandbox"]
	require.True(t, ok, "sandbox is not on the isolated network")
	ip := nw.IPAddress
	require.NotEmpty(t, ip)
	get := `printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 2 ` + ip + ` 8080`
	eventually(t, 10*time.Second, func() bool {
		res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: a, Command: get})
		return err == nil && strings.HasSuffix(res.GetStdout(), "\r\n\r\nhi\n")
	}, "server not reachable from its own sandbox")
	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: b, Command: get, Timeout: 10})
	require.NoError(t, err)
	require.NotContains(t, res.GetStdout(), "hi")
}

// Sandbox code can replace its agent's socket (the directory is writable
// from inside) with a symlink to a host socket; sandboxd must refuse to talk
// to whatever answers there.
func TestDockerAgentSocketSymlinkRefused(t *testing.T) {
	t.Parallel()
	e := start(t, "docker", nil)
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	rec, err := e.app.Store.Get(t.Context(), sid)
	require.NoError(t, err)
	require.NotZero(t, rec.AgentPID)
	_, err = agentclient.New(rec.Socket, rec.AgentPID).Health(t.Context())
	require.NoError(t, err)

	// First line: the run directory is sealed once the agent listens, so
	// the sandbox can neither swap the socket nor write files on the host.
	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "rm -f /.mgx/run/agent.sock; ln -s /var/run/docker.sock /.mgx/run/x; echo junk > /.mgx/run/fill; ls /.mgx/run"})
	require.NoError(t, err)
	require.Equal(t, "agent.sock\n", res.GetStdout())
	require.Contains(t, res.GetStderr(), "Permission denied")
	fi, err := os.Lstat(rec.Socket)
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&os.ModeSocket)

	// Second line: were the socket swapped anyway (as root does here), the
	// peer check refuses whatever answers instead of the agent.
	require.NoError(t, os.Remove(rec.Socket))
	require.NoError(t, os.Symlink("/var/run/docker.sock", rec.Socket))
	_, err = agentclient.New(rec.Socket, rec.AgentPID).Health(t.Context())
	require.ErrorIs(t, err, agentclient.ErrWrongPeer)
}

// Sandbox code cannot kill its agent (PID 1 ignores signals from inside);
// a sandbox that dies anyway (killed from outside, OOM) is re-created on the
// owner's next call instead of failing forever.
func TestDockerDeadSandboxIsRecreated(t *testing.T) {
	t.Parallel()
	cli := sandboxtest.Docker(t)
	e := start(t, "docker", nil)
	ctx := as(t.Context(), "user-a")
	sid := newSession()
	l, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "for s in KILL STOP TERM INT HUP QUIT ABRT TRAP SYS USR1 USR2 ALRM PIPE ILL BUS FPE SEGV XCPU PROF; do kill -$s 1 2>/dev/null; done; sleep 0.3; echo survived"})
	require.NoError(t, err)
	require.Equal(t, "survived\n", res.GetStdout())
	res, err = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo still"})
	require.NoError(t, err)
	require.Equal(t, "still\n", res.GetStdout())

	require.NoError(t, cli.ContainerKill(t.Context(), l.GetSandbox().GetContainerId(), "KILL"))
	eventually(t, 30*time.Second, func() bool {
		res, err = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo back"})
		return err == nil
	}, "dead sandbox not re-created")
	require.Equal(t, "back\n", res.GetStdout())
	g, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
	require.NoError(t, err)
	require.NotEqual(t, l.GetSandbox().GetContainerId(), g.GetSandbox().GetContainerId())
}
