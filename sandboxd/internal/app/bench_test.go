//go:build bench

package app_test

// The sandboxd benchmark (make bench-sandbox): sandboxd against raw Docker on this machine, printed
// side by side — exec round trip through sandboxd (gRPC → sandboxd → agent socket) vs the raw Docker
// exec API on the same container; create-to-first-exec cold and warm (pool) vs raw Docker
// create+start+exec; streamed output throughput. Loopback only, bounded in count and time. It is a
// test behind the `bench` build tag so it starts sandboxd the one way everything does (pkg/stacktest),
// and never runs with the suite:
//
//	cd sandboxd && go test -tags bench -run '^TestBench$' -count=1 -v ./internal/app -args -n 200 -sessions 8

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/uuid"

	"github.com/mgx-ai/mgx/pkg/authn"
	"github.com/mgx-ai/mgx/pkg/grpcclient"
	"github.com/mgx-ai/mgx/pkg/stacktest"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver/docker"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

var (
	benchN        = flag.Int("n", 200, "exec round trips per side")
	benchSessions = flag.Int("sessions", 8, "sandboxes created per create-to-first-exec measurement")
	benchStreamMB = flag.Int("stream-mb", 64, "MiB streamed for the throughput measurement")
	benchTimeout  = flag.Duration("bench-timeout", 5*time.Minute, "upper bound of the whole run")
)

type opts struct {
	n, sessions int
	streamMB    int
	image       string
}

func TestBench(t *testing.T) {
	cli := sandboxtest.Docker(t)
	ctx, cancel := context.WithTimeout(t.Context(), *benchTimeout)
	defer cancel()
	o := opts{n: *benchN, sessions: *benchSessions, streamMB: *benchStreamMB, image: sandboxtest.Image}
	if err := runBench(t, ctx, cli, o); err != nil {
		t.Fatal(err)
	}
}

func runBench(t *testing.T, ctx context.Context, cli *client.Client, o opts) error {
	ver, err := cli.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("docker engine: %w", err)
	}
	fmt.Printf("sandboxd bench: docker %s (API %s), image %s, %d exec round trips, %d sandboxes per create measurement\n\n",
		ver.Version, ver.APIVersion, o.image, o.n, o.sessions)

	var rows []row
	// Phase 1: no pool — exec latency, cold creation, streaming.
	err = withSandboxd(t, ctx, o, 0, func(sb sandboxdv1.SandboxServiceClient, ws sandboxdv1.WorkspaceServiceClient, uctx context.Context, _ func() error) error {
		sid := uuid.NewString()
		l, err := sb.LaunchSandbox(uctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		if err != nil {
			return err
		}
		cid := l.GetSandbox().GetContainerId()
		ours, err := measure(o.n, func() error {
			_, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "true"})
			return err
		})
		if err != nil {
			return err
		}
		raw, err := measure(o.n, func() error { _, err := dockerExec(ctx, cli, cid, "true", io.Discard); return err })
		if err != nil {
			return err
		}
		rows = append(rows,
			row{"exec round trip p50", ms(pct(ours, 50)), ms(pct(raw, 50)), speedup(pct(raw, 50), pct(ours, 50))},
			row{"exec round trip p99", ms(pct(ours, 99)), ms(pct(raw, 99)), speedup(pct(raw, 99), pct(ours, 99))})

		// Streamed output.
		n := o.streamMB << 20
		cmd := "head -c " + strconv.Itoa(n) + " /dev/zero"
		begin := time.Now()
		st, err := sb.ExecStream(uctx, &sandboxdv1.ExecStreamRequest{SessionId: sid, Command: cmd})
		if err != nil {
			return err
		}
		got := 0
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			got += len(m.GetStdout())
		}
		oursTP := float64(got) / time.Since(begin).Seconds() / (1 << 20)
		begin = time.Now()
		cnt := &counter{}
		if _, err := dockerExec(ctx, cli, cid, cmd, cnt); err != nil {
			return err
		}
		rawTP := float64(cnt.n) / time.Since(begin).Seconds() / (1 << 20)
		if got != n || cnt.n != n {
			return fmt.Errorf("stream: got %d and %d bytes, want %d", got, cnt.n, n)
		}
		_, _ = sb.DestroySandbox(uctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})

		// Removal is not part of create-to-first-exec: each sandbox of the
		// previous round is destroyed, untimed, before the next.
		var prev string
		cold, err := measure(o.sessions, func() error {
			if prev != "" {
				_, _ = sb.DestroySandbox(uctx, &sandboxdv1.DestroySandboxRequest{SessionId: prev, Forget: true})
			}
			return nil
		}, func() error {
			sid := uuid.NewString()
			prev = sid
			if _, err := sb.LaunchSandbox(uctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid}); err != nil {
				return err
			}
			_, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "true"})
			return err
		})
		if err != nil {
			return err
		}
		rawCold, err := measureRawCreate(ctx, cli, o)
		if err != nil {
			return err
		}
		rows = append(rows,
			row{"create-to-first-exec cold p50", ms(pct(cold, 50)), ms(pct(rawCold, 50)), ratio(pct(cold, 50), pct(rawCold, 50))},
			row{"streamed output throughput", fmt.Sprintf("%.0f MiB/s", oursTP), fmt.Sprintf("%.0f MiB/s", rawTP), fmt.Sprintf("%.2fx", oursTP/rawTP)})
		coldRow := len(rows) - 2
		rows = append(rows[:coldRow+1], append([]row{{}}, rows[coldRow+1:]...)...) // slot for warm
		rows[coldRow+1] = row{"create-to-first-exec warm p50", "", ms(pct(rawCold, 50)), ""}

		// Resume of a reaped session: its sandbox is gone (destroyed as the reaper does, keeping the
		// workspace), and the owner's next call creates one on the existing volumes — against the
		// cold create of a new session above.
		var resumed []string
		resume, err := measure(o.sessions, func() error {
			sid := uuid.NewString()
			resumed = append(resumed, sid)
			if _, err := sb.LaunchSandbox(uctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid}); err != nil {
				return err
			}
			if _, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo kept > kept.txt"}); err != nil {
				return err
			}
			_, err := sb.DestroySandbox(uctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid})
			return err
		}, func() error {
			res, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: resumed[len(resumed)-1], Command: "cat kept.txt"})
			if err == nil && res.GetStdout() != "kept\n" {
				err = fmt.Errorf("resumed workspace lost its file: %q", res.GetStdout())
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, sid := range resumed {
			_, _ = sb.DestroySandbox(uctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})
		}
		rows = append(rows, row{"resume reaped session p50", ms(pct(resume, 50)), "cold " + ms(pct(cold, 50)),
			fmt.Sprintf("%.2fx cold", float64(pct(resume, 50))/float64(pct(cold, 50)))})

		// A checkpoint of a 2,000-file project after one file changed, against a full copy of the tree
		// (tar in the container: what a snapshot without an index costs).
		sid = uuid.NewString()
		l, err = sb.LaunchSandbox(uctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
		if err != nil {
			return err
		}
		cid = l.GetSandbox().GetContainerId()
		defer func() {
			_, _ = sb.DestroySandbox(uctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})
		}()
		gen := `i=0; while [ $i -lt 2000 ]; do d=src/d$((i % 40)); mkdir -p $d; printf 'export const v%d = %d;\n// %0200d\n' $i $i $i > $d/f$i.ts; i=$((i+1)); done`
		if res, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: gen, Timeout: 120}); err != nil || res.GetExitCode() != 0 {
			return fmt.Errorf("generate the project: %v %s", err, res.GetStderr())
		}
		if _, err := ws.CreateCheckpoint(uctx, &sandboxdv1.CreateCheckpointRequest{SessionId: sid}); err != nil {
			return err
		}
		edit := 0
		change := func() error {
			edit++
			_, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: fmt.Sprintf("echo %d > src/d0/f0.ts", edit)})
			return err
		}
		cps, err := measure(max(o.n/10, 10), change, func() error {
			r, err := ws.CreateCheckpoint(uctx, &sandboxdv1.CreateCheckpointRequest{SessionId: sid})
			if err == nil && !r.GetCreated() {
				err = errors.New("a change made no checkpoint")
			}
			return err
		})
		if err != nil {
			return err
		}
		rawCp, err := measure(max(o.n/10, 10), change, func() error {
			_, err := dockerExec(ctx, cli, cid, "tar cf /tmp/snapshot.tar -C /workspace .", io.Discard)
			return err
		})
		if err != nil {
			return err
		}
		rows = append(rows, row{"checkpoint 2,000 files p50", ms(pct(cps, 50)), "tar " + ms(pct(rawCp, 50)),
			speedup(pct(rawCp, 50), pct(cps, 50))})
		return nil
	})
	if err != nil {
		return err
	}
	// Phase 2: a warm pool — creation is a claim.
	err = withSandboxd(t, ctx, o, 2, func(sb sandboxdv1.SandboxServiceClient, _ sandboxdv1.WorkspaceServiceClient, uctx context.Context, waitPool func() error) error {
		warm, err := measure(o.sessions, waitPool, func() error {
			sid := uuid.NewString()
			if _, err := sb.LaunchSandbox(uctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid}); err != nil {
				return err
			}
			_, err := sb.Exec(uctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "true"})
			return err
		})
		if err != nil {
			return err
		}
		for i := range rows {
			if rows[i].metric == "create-to-first-exec warm p50" {
				rows[i].ours = ms(pct(warm, 50))
				raw, _ := time.ParseDuration(rows[i].raw[:len(rows[i].raw)-3] + "ms")
				rows[i].ratio = speedup(raw, pct(warm, 50))
			}
		}
		_, _ = sb.DestroyAllSandboxes(uctx, &sandboxdv1.DestroyAllSandboxesRequest{})
		return nil
	})
	if err != nil {
		return err
	}
	printTable(rows)
	return nil
}

type row struct{ metric, ours, raw, ratio string }

func printTable(rows []row) {
	fmt.Printf("| %-32s | %-14s | %-14s | %-16s |\n", "metric", "sandboxd", "raw Docker", "sandboxd vs raw")
	fmt.Printf("|%s|%s|%s|%s|\n", dashes(34), dashes(16), dashes(16), dashes(18))
	for _, r := range rows {
		fmt.Printf("| %-32s | %-14s | %-14s | %-16s |\n", r.metric, r.ours, r.raw, r.ratio)
	}
}

func dashes(n int) string { return string(bytes.Repeat([]byte("-"), n)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func speedup(raw, ours time.Duration) string {
	return fmt.Sprintf("%.1fx faster", float64(raw)/float64(ours))
}

func ratio(ours, raw time.Duration) string {
	return fmt.Sprintf("%.2fx raw", float64(ours)/float64(raw))
}

// measure times fn n times (after one warm-up call); an optional first
// function runs untimed before each timed one.
func measure(n int, fns ...func() error) ([]time.Duration, error) {
	prep, fn := func() error { return nil }, fns[0]
	if len(fns) == 2 {
		prep, fn = fns[0], fns[1]
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		if err := prep(); err != nil {
			return nil, err
		}
		begin := time.Now()
		if err := fn(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(begin))
	}
	return out, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

type counter struct{ n int }

func (c *counter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// dockerExec is the baseline: what a sandbox manager without an in-sandbox
// agent does per command (create, attach, read to EOF, inspect).
func dockerExec(ctx context.Context, cli *client.Client, cid, cmd string, out io.Writer) (int, error) {
	ex, err := cli.ContainerExecCreate(ctx, cid, container.ExecOptions{Cmd: []string{"sh", "-c", cmd}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, err
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, err
	}
	_, err = stdcopy.StdCopy(out, io.Discard, att.Reader)
	att.Close()
	if err != nil {
		return 0, err
	}
	ins, err := cli.ContainerExecInspect(ctx, ex.ID)
	return ins.ExitCode, err
}

// measureRawCreate times docker create+start+exec of the same image with
// the same limits and network, the floor any Docker-based manager pays.
func measureRawCreate(ctx context.Context, cli *client.Client, o opts) ([]time.Duration, error) {
	pids := int64(512)
	var prev string
	defer func() {
		if prev != "" {
			_ = cli.ContainerRemove(context.WithoutCancel(ctx), prev, container.RemoveOptions{Force: true})
		}
	}()
	return measure(o.sessions, func() error {
		if prev != "" {
			_ = cli.ContainerRemove(ctx, prev, container.RemoveOptions{Force: true})
			prev = ""
		}
		return nil
	}, func() error {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: o.image, User: "1000:1000", Entrypoint: []string{"sleep"}, Cmd: []string{"3600"}},
			&container.HostConfig{CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"}, NetworkMode: docker.DefaultNetwork,
				Resources: container.Resources{NanoCPUs: 1e9, Memory: 1 << 30, MemorySwap: 1 << 30, PidsLimit: &pids}}, nil, nil, "")
		if err != nil {
			return err
		}
		prev = c.ID
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return err
		}
		_, err = dockerExec(ctx, cli, c.ID, "true", io.Discard)
		return err
	})
}

// withSandboxd runs fn against a sandboxd in this process with a warm pool of the given size, and
// leaves no sandbox behind.
func withSandboxd(t *testing.T, ctx context.Context, o opts, pool int, fn func(sandboxdv1.SandboxServiceClient, sandboxdv1.WorkspaceServiceClient, context.Context, func() error) error) error {
	vars := baseEnv(t, "docker", stacktest.Redis(t))
	vars["MGX_LOG_LEVEL"] = "error"
	vars["SANDBOX_IMAGE"] = o.image
	vars["SANDBOX_POOL_SIZE"] = strconv.Itoa(pool)
	// The bench's own limits, as before: the product's defaults, not the conformance tests' tight ones.
	delete(vars, "SANDBOX_MEMORY")
	delete(vars, "SANDBOX_PIDS_LIMIT")
	vars["SANDBOX_CREATE_TIMEOUT"] = "60"
	e := startWith(t, vars)
	defer e.stop()
	a := e.app
	defer func() {
		// Leave no sandbox behind (including the pool's), nor a workspace.
		insts, _ := a.Driver.List(context.WithoutCancel(ctx))
		for _, in := range insts {
			_ = a.Driver.Remove(context.WithoutCancel(ctx), in.ID)
		}
		vols, _ := a.Driver.ListVolumes(context.WithoutCancel(ctx))
		for _, v := range vols {
			_ = a.Driver.RemoveVolume(context.WithoutCancel(ctx), v.Name)
		}
	}()
	conn, err := grpcclient.Dial(a.GRPCAddr(), grpcclient.Options{InternalToken: token})
	if err != nil {
		return err
	}
	defer conn.Close()
	sb := sandboxdv1.NewSandboxServiceClient(conn)
	uctx := authn.WithUser(ctx, "bench-user")
	// waitPool blocks until the warm pool is full, so each warm measurement is a claim and not a race
	// with the refill.
	waitPool := func() error {
		deadline := time.Now().Add(60 * time.Second)
		for {
			n, err := a.Store.PoolSize(ctx)
			if err != nil {
				return err
			}
			if int(n) >= pool {
				return nil
			}
			if time.Now().After(deadline) {
				return errors.New("warm pool did not fill within 60 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := waitPool(); err != nil {
		return err
	}
	return fn(sb, sandboxdv1.NewWorkspaceServiceClient(conn), uctx, waitPool)
}
