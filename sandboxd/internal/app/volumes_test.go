package app_test

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/mgx-ai/mgx/pkg/rpcerr"
	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"
	"github.com/mgx-ai/mgx/sandboxd/internal/driver"
	"github.com/mgx-ai/mgx/sandboxd/internal/instance"
	"github.com/mgx-ai/mgx/sandboxd/internal/sandboxtest"
)

// A session's workspace is its own volume: whatever ends its sandbox (the idle reaper, a killed
// container or agent), the owner's next call finds every file. Deleting the session removes the
// volume; a volume nothing references is reconciled away after its grace; a volume that went
// missing or is not the session's is reported, never replaced by an empty one. The same contract
// for both drivers, on the real engine for Docker.
func TestWorkspaceOutlivesItsSandboxes(t *testing.T) {
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			e := start(t, drv, map[string]string{
				"SANDBOX_IDLE_TIMEOUT": "2", "SANDBOX_GC_INTERVAL": "1",
				"SANDBOX_CREATE_TIMEOUT": "20", "SANDBOX_VOLUME_GRACE": "20",
			})
			ctx := as(t.Context(), "user-a")
			exec := func(t *testing.T, sid, command string) string {
				t.Helper()
				res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: command, Timeout: 20})
				require.NoError(t, err)
				require.Zero(t, res.GetExitCode(), "%s: %s", command, res.GetStderr())
				return res.GetStdout()
			}
			// work writes files through both paths (a command, the files API) and returns what
			// reading them all back must print.
			work := func(t *testing.T, sid string) string {
				t.Helper()
				_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
				require.NoError(t, err)
				exec(t, sid, "mkdir -p src/deep && echo one > src/deep/a.txt && printf 'two' > b.txt")
				_, err = e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: "src/c.txt", Content: "three\n"})
				require.NoError(t, err)
				return "one\ntwothree\n"
			}
			const readBack = "cat src/deep/a.txt b.txt src/c.txt"
			instanceOf := func(t *testing.T, sid string) driver.Instance {
				t.Helper()
				insts, err := e.app.Driver.List(t.Context())
				require.NoError(t, err)
				for _, in := range insts {
					if in.Labels[driver.LabelSession] == sid {
						return in
					}
				}
				t.Fatalf("no instance of session %s", sid)
				return driver.Instance{}
			}
			// A local sandbox keeps its name as its id; its agent's pid tells one run from the next.
			incarnation := func(in driver.Instance) string { return in.ID + "/" + strconv.Itoa(in.PID) }
			reaped := func(t *testing.T, sid string) {
				t.Helper()
				eventually(t, 20*time.Second, func() bool {
					_, err := e.sb.GetSandbox(ctx, &sandboxdv1.GetSandboxRequest{SessionId: sid})
					return code(err) == codes.NotFound
				}, "idle sandbox not reaped")
			}
			lostAs := func(t *testing.T, err error, state string) {
				t.Helper()
				require.Equal(t, codes.FailedPrecondition, code(err), "%v", err)
				require.Equal(t, errorsv1.ErrorReason_WORKSPACE_LOST, rpcerr.Reason(err))
				info, ok := rpcerr.ErrorInfo(err)
				require.True(t, ok)
				require.Equal(t, state, info.GetMetadata()["state"])
				require.NotContains(t, err.Error(), "mgx-ws-", "the volume's name is not the user's business")
			}

			t.Run("idle reap", func(t *testing.T) {
				sid := newSession()
				want := work(t, sid)
				before := instanceOf(t, sid)
				w, err := e.ws.GetWorkspace(ctx, &sandboxdv1.GetWorkspaceRequest{SessionId: sid})
				require.NoError(t, err)
				require.Equal(t, "ok", w.GetWorkspace().GetState())
				require.True(t, w.GetWorkspace().GetMeasured())
				require.GreaterOrEqual(t, w.GetWorkspace().GetFiles(), int64(5), "two directories and three files")
				require.Positive(t, w.GetWorkspace().GetSizeBytes())
				reaped(t, sid)
				require.Equal(t, want, exec(t, sid, readBack))
				after := instanceOf(t, sid)
				require.NotEqual(t, incarnation(before), incarnation(after), "a new sandbox, on the same workspace")
				require.Equal(t, before.WorkspaceID, after.WorkspaceID)
			})

			t.Run("killed sandbox", func(t *testing.T) {
				sid := newSession()
				want := work(t, sid)
				in := instanceOf(t, sid)
				if drv == "docker" {
					require.NoError(t, sandboxtest.Docker(t).ContainerKill(t.Context(), in.ID, "KILL"))
				} else {
					require.NoError(t, syscall.Kill(in.PID, syscall.SIGKILL))
				}
				var out string
				eventually(t, 30*time.Second, func() bool {
					res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: readBack, Timeout: 20})
					out = res.GetStdout()
					return err == nil
				}, "killed sandbox not re-created")
				require.Equal(t, want, out)
				require.NotEqual(t, incarnation(in), incarnation(instanceOf(t, sid)))
			})

			t.Run("checkpoints live in the workspace's history", func(t *testing.T) {
				sid := newSession()
				want := work(t, sid)
				exec(t, sid, "mkdir -p node_modules/dep && echo dep > node_modules/dep/i.js")
				first, err := e.ws.CreateCheckpoint(ctx, &sandboxdv1.CreateCheckpointRequest{SessionId: sid, Message: "start"})
				require.NoError(t, err)
				require.True(t, first.GetCreated())
				require.Equal(t, int32(3), first.GetCheckpoint().GetFilesChanged(), "node_modules is not history")
				require.Equal(t, "manual", first.GetCheckpoint().GetKind())
				exec(t, sid, "echo broken > src/deep/a.txt")
				step, err := e.ws.CreateCheckpoint(ctx, &sandboxdv1.CreateCheckpointRequest{SessionId: sid, Agent: "Alex", RunId: "run-1", Step: "call_1"})
				require.NoError(t, err)
				require.Equal(t, "step", step.GetCheckpoint().GetKind())
				require.Equal(t, first.GetCheckpoint().GetId(), step.GetCheckpoint().GetParentId())
				// The history is the workspace's: it survives the sandbox, and is nowhere in /workspace.
				reaped(t, sid)
				require.Empty(t, exec(t, sid, "find . -name '*.jsonl' -o -name 'objects' | grep -v node_modules || true"))
				l, err := e.ws.ListCheckpoints(ctx, &sandboxdv1.ListCheckpointsRequest{SessionId: sid})
				require.NoError(t, err)
				require.Len(t, l.GetCheckpoints(), 2)
				require.Equal(t, step.GetCheckpoint().GetId(), l.GetCheckpoints()[0].GetId())
				d, err := e.ws.DiffCheckpoint(ctx, &sandboxdv1.DiffCheckpointRequest{SessionId: sid, CheckpointId: first.GetCheckpoint().GetId()})
				require.NoError(t, err)
				require.Len(t, d.GetFiles(), 1)
				require.Equal(t, "src/deep/a.txt", d.GetFiles()[0].GetPath())
				require.Contains(t, d.GetFiles()[0].GetDiff(), "-one\n+broken\n")
				r, err := e.ws.RestoreCheckpoint(ctx, &sandboxdv1.RestoreCheckpointRequest{SessionId: sid, CheckpointId: first.GetCheckpoint().GetId()})
				require.NoError(t, err)
				require.Equal(t, int32(1), r.GetFilesChanged())
				require.Equal(t, want, exec(t, sid, readBack))
				require.Equal(t, "dep\n", exec(t, sid, "cat node_modules/dep/i.js"))
				_, err = e.ws.DiffCheckpoint(ctx, &sandboxdv1.DiffCheckpointRequest{SessionId: sid, CheckpointId: "0123456789abcdef"})
				require.Equal(t, codes.NotFound, code(err))
				require.Equal(t, errorsv1.ErrorReason_CHECKPOINT_NOT_FOUND, rpcerr.Reason(err))
				_, err = e.ws.ListCheckpoints(as(t.Context(), "user-b"), &sandboxdv1.ListCheckpointsRequest{SessionId: sid})
				require.Equal(t, codes.NotFound, code(err))
			})

			t.Run("another user", func(t *testing.T) {
				sid := newSession()
				work(t, sid)
				_, err := e.ws.GetWorkspace(as(t.Context(), "user-b"), &sandboxdv1.GetWorkspaceRequest{SessionId: sid})
				require.Equal(t, codes.NotFound, code(err))
				_, err = e.ws.ResetWorkspace(as(t.Context(), "user-b"), &sandboxdv1.ResetWorkspaceRequest{SessionId: sid})
				require.Equal(t, codes.NotFound, code(err))
			})

			t.Run("deleting the session removes its volumes", func(t *testing.T) {
				sid := newSession()
				work(t, sid)
				wid := instanceOf(t, sid).WorkspaceID
				require.NotEmpty(t, wid)
				_, err := e.sb.DestroySandbox(ctx, &sandboxdv1.DestroySandboxRequest{SessionId: sid, Forget: true})
				require.NoError(t, err)
				data, meta := instance.VolumeNames(wid)
				for _, v := range []string{data, meta} {
					_, err := e.app.Driver.InspectVolume(t.Context(), v)
					require.ErrorIs(t, err, driver.ErrVolumeNotFound, v)
				}
			})

			t.Run("missing volume is reported, not replaced", func(t *testing.T) {
				sid := newSession()
				work(t, sid)
				wid := instanceOf(t, sid).WorkspaceID
				reaped(t, sid)
				data, _ := instance.VolumeNames(wid)
				require.NoError(t, e.app.Driver.RemoveVolume(t.Context(), data))

				_, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "ls"})
				lostAs(t, err, "missing")
				// Asked again, the same answer: nothing was made in its place meanwhile.
				_, err = e.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: sid})
				lostAs(t, err, "missing")
				_, err = e.app.Driver.InspectVolume(t.Context(), data)
				require.ErrorIs(t, err, driver.ErrVolumeNotFound)
				w, err := e.ws.GetWorkspace(ctx, &sandboxdv1.GetWorkspaceRequest{SessionId: sid})
				require.NoError(t, err)
				require.Equal(t, "missing", w.GetWorkspace().GetState())
				require.False(t, w.GetWorkspace().GetMeasured())

				// The owner decides: a reset starts over on an empty workspace.
				_, err = e.ws.ResetWorkspace(ctx, &sandboxdv1.ResetWorkspaceRequest{SessionId: sid})
				require.NoError(t, err)
				require.Equal(t, "", strings.TrimSpace(exec(t, sid, "ls -A")))
				exec(t, sid, "echo again > new.txt")
				reaped(t, sid)
				require.Equal(t, "again\n", exec(t, sid, "cat new.txt"))
				// A reset of a workspace that is fine is refused.
				_, err = e.ws.ResetWorkspace(ctx, &sandboxdv1.ResetWorkspaceRequest{SessionId: sid})
				require.Equal(t, codes.FailedPrecondition, code(err))
			})

			t.Run("foreign volume is reported and left alone", func(t *testing.T) {
				sid := newSession()
				work(t, sid)
				wid := instanceOf(t, sid).WorkspaceID
				reaped(t, sid)
				// Someone else's volume appears under the workspace's name.
				data, meta := instance.VolumeNames(wid)
				require.NoError(t, e.app.Driver.RemoveVolume(t.Context(), data))
				_, err := e.app.Driver.CreateVolume(t.Context(), data, map[string]string{driver.LabelWorkspace: "someone-else", driver.LabelVolume: driver.VolumeData})
				require.NoError(t, err)

				_, err = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "ls"})
				lostAs(t, err, "foreign")
				// The reset moves the session to a new workspace; the foreign volume is untouched, and
				// reconciliation keeps it for good.
				_, err = e.ws.ResetWorkspace(ctx, &sandboxdv1.ResetWorkspaceRequest{SessionId: sid})
				require.NoError(t, err)
				require.NotEqual(t, wid, instanceOf(t, sid).WorkspaceID)
				v, err := e.app.Driver.InspectVolume(t.Context(), data)
				require.NoError(t, err)
				require.Equal(t, "someone-else", v.Labels[driver.LabelWorkspace])
				_, err = e.app.Driver.InspectVolume(t.Context(), meta)
				require.NoError(t, err, "the old meta volume is kept with it")
			})

			t.Run("orphan volume is reconciled after its grace", func(t *testing.T) {
				// Volume names are the engine's, not a namespace's: a fixed one collides with the same
				// test running at once from another checkout on this engine.
				id := "orphan" + strconv.FormatInt(time.Now().UnixNano(), 36)
				orphan, _ := instance.VolumeNames(id)
				_, err := e.app.Driver.CreateVolume(t.Context(), orphan, map[string]string{driver.LabelWorkspace: id, driver.LabelVolume: driver.VolumeData})
				require.NoError(t, err)
				rep, err := e.app.Manager.Reconcile(t.Context())
				require.NoError(t, err)
				require.Zero(t, rep.VolumesRemoved, "within its grace: %s", rep)
				_, err = e.app.Driver.InspectVolume(t.Context(), orphan)
				require.NoError(t, err)
				eventually(t, 60*time.Second, func() bool {
					_, err := e.app.Driver.InspectVolume(t.Context(), orphan)
					return err != nil
				}, "orphan volume not removed by the periodic reconciliation")
				// Every workspace in use is still there.
				rep, err = e.app.Manager.Reconcile(t.Context())
				require.NoError(t, err)
				require.Zero(t, rep.VolumesRemoved, rep.String())
			})
		})
	}
}
