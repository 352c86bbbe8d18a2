package app_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	sandboxdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/sandboxd/v1"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// TestWorkspaceTools covers what agents' tools need beside plain files, on both drivers: the change
// journal (shell edits, created directories, a long poll), content search, pruned trees, and which
// ports a process listens on with the tail of its log.
func TestWorkspaceTools(t *testing.T) {
	for _, drv := range []string{"docker", "local"} {
		t.Run(drv, func(t *testing.T) {
			e := start(t, drv, nil)
			ctx := as(t.Context(), "user-a")
			sid := newSession()
			_, err := e.sb.LaunchSandbox(ctx, &sandboxdv1.LaunchSandboxRequest{SessionId: sid})
			require.NoError(t, err)
			exec := func(t *testing.T, cmd string) {
				t.Helper()
				res, err := e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: cmd})
				require.NoError(t, err)
				require.EqualValues(t, 0, res.GetExitCode(), res.GetStderr())
			}
			changes := func(t *testing.T, cursor string, wait int32) *sandboxdv1.ListChangesResponse {
				t.Helper()
				res, err := e.files.ListChanges(ctx, &sandboxdv1.ListChangesRequest{SessionId: sid, Cursor: cursor, WaitMs: wait})
				require.NoError(t, err)
				return res
			}
			names := func(res *sandboxdv1.ListChangesResponse) []string {
				var out []string
				for _, c := range res.GetChanges() {
					out = append(out, c.GetKind()+" "+c.GetPath())
				}
				sort.Strings(out)
				return out
			}

			t.Run("changes made by commands", func(t *testing.T) {
				exec(t, "printf 'one\\ntwo\\n' > notes.txt")
				cur := changes(t, "", 0)
				require.NotEmpty(t, cur.GetCursor())
				require.Empty(t, cur.GetChanges(), "no cursor: only the current position")
				require.Contains(t, []string{"inotify", "scan"}, cur.GetMode())
				t.Logf("%s sandbox: change journal mode %s", drv, cur.GetMode())

				exec(t, "sed -i 's/one/ONE/' notes.txt && mkdir -p gen/sub && touch gen/sub/a.txt gen/b.txt && mkdir -p node_modules/x && touch node_modules/x/i.js")
				res := changes(t, cur.GetCursor(), 0)
				require.False(t, res.GetIncomplete())
				require.Equal(t, []string{"created gen", "created gen/b.txt", "created gen/sub", "created gen/sub/a.txt",
					"created node_modules", "modified notes.txt"}, names(res))

				// A long poll returns once a change happens.
				go func() {
					time.Sleep(300 * time.Millisecond)
					_, _ = e.sb.Exec(ctx, &sandboxdv1.ExecRequest{SessionId: sid, Command: "echo late > late.txt"})
				}()
				begin := time.Now()
				res = changes(t, res.GetCursor(), 10000)
				require.Less(t, time.Since(begin), 8*time.Second)
				require.Contains(t, names(res), "created late.txt")

				_, err := e.files.ListChanges(ctx, &sandboxdv1.ListChangesRequest{SessionId: sid, Cursor: "bogus"})
				require.Equal(t, codes.InvalidArgument, code(err), "%v", err)
				stale := changes(t, "0123456789abcdef:1", 0)
				require.True(t, stale.GetIncomplete(), "a cursor of another agent run cannot be served exactly")
			})

			t.Run("search", func(t *testing.T) {
				for path, content := range map[string]string{
					"src/app.tsx":         "export function App() {\n  return <h1>Hello</h1>\n}\n",
					"src/util.ts":         "// hello helper\nexport const hello = () => 'HELLO'\n",
					"node_modules/p/i.js": "hello from a dependency\n",
					"dist/bundle.js":      "hello built\n",
					".hidden/x.txt":       "hello hidden\n",
				} {
					_, err := e.files.WriteFile(ctx, &sandboxdv1.WriteFileRequest{SessionId: sid, Path: path, Content: content})
					require.NoError(t, err)
				}
				exec(t, "printf 'hello\\000binary' > src/blob.bin")
				prune := []string{"node_modules", "dist"}
				res, err := e.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: sid, Pattern: "hello", IgnoreCase: true, Prune: prune, Path: "src"})
				require.NoError(t, err)
				var got []string
				for _, m := range res.GetMatches() {
					got = append(got, fmt.Sprintf("%s:%d:%s", m.GetPath(), m.GetLine(), m.GetText()))
				}
				require.Equal(t, []string{"src/app.tsx:2:  return <h1>Hello</h1>", "src/util.ts:1:// hello helper",
					"src/util.ts:2:export const hello = () => 'HELLO'"}, got)
				require.EqualValues(t, 1, res.GetFilesSkipped(), "the binary file")

				res, err = e.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: sid, Pattern: "hello", Glob: "*.tsx", IgnoreCase: true, Prune: prune})
				require.NoError(t, err)
				require.Len(t, res.GetMatches(), 1)
				res, err = e.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: sid, Pattern: "^export", Glob: "src/**/*.ts", Prune: prune})
				require.NoError(t, err)
				require.Len(t, res.GetMatches(), 1)
				require.Equal(t, "src/util.ts", res.GetMatches()[0].GetPath())
				res, err = e.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: sid, Pattern: "hello", Prune: prune, MaxMatches: 1})
				require.NoError(t, err)
				require.True(t, res.GetTruncated())

				_, err = e.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: sid, Pattern: "(unclosed"})
				require.Equal(t, codes.InvalidArgument, code(err))
				_, err = e.files.SearchFiles(ctx, &sandboxdv1.SearchFilesRequest{SessionId: sid, Pattern: "x", Path: "../etc"})
				require.Equal(t, codes.InvalidArgument, code(err))
			})

			t.Run("pruned tree", func(t *testing.T) {
				tree, err := e.files.GetFileTree(ctx, &sandboxdv1.GetFileTreeRequest{SessionId: sid, Depth: 3, Prune: []string{"node_modules"}})
				require.NoError(t, err)
				var nm *sandboxdv1.FileEntry
				for _, en := range tree.GetEntries() {
					if en.GetName() == "node_modules" {
						nm = en
					}
				}
				require.NotNil(t, nm, "a pruned directory is still listed")
				require.Empty(t, nm.GetChildren())
			})

			t.Run("process ports and log tail", func(t *testing.T) {
				port := 8123
				if drv == "local" {
					port = stacktest.Port(t)
				}
				cmd := fmt.Sprintf("i=0; while [ $i -lt 200 ]; do echo log line $i; i=$((i+1)); done; exec busybox httpd -f -p %d -h . || exec httpd -f -p %d -h .", port, port)
				if drv == "local" {
					cmd = fmt.Sprintf("i=0; while [ $i -lt 200 ]; do echo log line $i; i=$((i+1)); done; exec python3 -m http.server %d", port)
				}
				_, err := e.procs.StartProcess(ctx, &sandboxdv1.StartProcessRequest{SessionId: sid, Name: "web", Command: cmd})
				require.NoError(t, err)
				eventually(t, 20*time.Second, func() bool {
					ps, err := e.procs.ListProcesses(ctx, &sandboxdv1.ListProcessesRequest{SessionId: sid})
					if err != nil {
						return false
					}
					for _, p := range ps.GetProcesses() {
						if p.GetName() == "web" && slices.Contains(p.GetPorts(), int32(port)) {
							return true
						}
					}
					return false
				}, "the listing names the port the process listens on")

				st, err := e.procs.GetProcessLogs(ctx, &sandboxdv1.GetProcessLogsRequest{SessionId: sid, Name: "web", TailBytes: 40})
				require.NoError(t, err)
				var data []byte
				var first, next int64 = -1, 0
				for {
					m, err := st.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					require.NoError(t, err)
					if first < 0 {
						first = m.GetOffset()
					}
					data = append(data, m.GetData()...)
					next = m.GetNextOffset()
				}
				require.Len(t, data, 40)
				require.True(t, strings.HasSuffix(string(data), "log line 199\n"), string(data))
				require.Equal(t, next-40, first, "the answer says where the tail starts")

				// An offset past the end (a restarted process's new log) starts over.
				st, err = e.procs.GetProcessLogs(ctx, &sandboxdv1.GetProcessLogsRequest{SessionId: sid, Name: "web", Offset: next + 1000000})
				require.NoError(t, err)
				m, err := st.Recv()
				require.NoError(t, err)
				require.EqualValues(t, 0, m.GetOffset())
				_, err = e.procs.SignalProcess(ctx, &sandboxdv1.SignalProcessRequest{SessionId: sid, Name: "web", Signal: "KILL"})
				require.NoError(t, err)
			})
		})
	}
}
