package stack_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/deploy/local/internal/devredis"
)

// Every run: Alex appends "a", then spends a few seconds before appending "b", so runs overlap and a
// replica can be killed in the middle of them.
const scaleOutScript = `
agents:
  mike:
    - tool_calls:
        - {name: send_message, args: {to: alex, content: "append the two lines"}}
    - tool_calls:
        - {name: reply_to_human, args: {content: "Both lines appended."}}
    - tool_calls:
        - {name: end, args: {}}
  alex:
    - tool_calls:
        - {name: sandbox_shell, args: {command: "echo a >> log.txt"}}
    - tool_calls:
        - {name: sandbox_shell, args: {command: "sleep 4; echo b >> log.txt"}}
    - tool_calls:
        - {name: send_message, args: {to: mike, content: "appended"}}
`

// TestScaleOut is the multi-replica proof: three agentd replicas share one Redis behind one gateway,
// which balances its calls over them (a static replica list, round-robin). Concurrent sessions' runs
// spread over all three; one replica is then killed with SIGKILL in the middle of its runs, and every
// run still completes — taken over by the survivors — with no side-effecting step executed twice.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary")
	}
	bin := buildAll(t)
	red, err := devredis.Start(t.Context(), t.TempDir(), false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = red.Stop(t.Context()) })

	ports := freePorts(t, 6)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	script := filepath.Join(t.TempDir(), "scaleout.yaml")
	require.NoError(t, os.WriteFile(script, []byte(scaleOutScript), 0o600))
	common := []string{
		"MGX_INTERNAL_TOKEN=scale-out-test-token",
		"GATEWAY_REDIS_URL=" + red.URL, "AGENTD_REDIS_URL=" + red.URL, "SANDBOXD_REDIS_URL=" + red.URL,
		"SANDBOXD_ADDR=" + addr(1), "SANDBOXD_PREVIEW_URL=http://" + addr(2),
		"MGX_PUBLIC_URL=http://localhost:" + strconv.Itoa(ports[0]),
	}
	run := func(name string, env ...string) *proc {
		return startProc(t, name, filepath.Join(bin, strings.TrimRight(name, "0123456789")), append(common, env...))
	}
	run("sandboxd", "SANDBOXD_LISTEN="+addr(1), "SANDBOXD_PREVIEW_LISTEN="+addr(2), "SANDBOXD_DRIVER=local",
		"SANDBOXD_RUN_DIR="+t.TempDir(), "SANDBOX_POOL_SIZE=0", "SANDBOXD_DESTROY_ON_EXIT=true",
		"SANDBOXD_NAMESPACE=scaleout-"+strconv.Itoa(ports[0]))
	agents := map[string]*proc{}
	var agentdAddrs []string
	for i, id := range []string{"agentd1", "agentd2", "agentd3"} {
		agents[id] = run(id, "AGENTD_LISTEN="+addr(3+i), "AGENTD_REPLICA_ID="+id,
			"AGENTD_LLM_PROVIDER=scripted", "AGENTD_SCRIPT_FILE="+script,
			// Two runs at a time per replica, so six concurrent runs need all three replicas.
			"AGENTD_MAX_CONCURRENT_RUNS=2", "AGENTD_RUN_LEASE_TTL=3s")
		agentdAddrs = append(agentdAddrs, addr(3+i))
	}
	run("gateway", "GATEWAY_LISTEN="+addr(0), "AGENTD_ADDR="+strings.Join(agentdAddrs, ","),
		"MGX_DEMO_EMAIL=demo@mgx.dev", "MGX_DEMO_PASSWORD=demo-password", "GATEWAY_RATE_LIMIT=0")
	base := "http://" + addr(0)
	eventuallyTrue(t, 60*time.Second, func() bool {
		return doJSONQuiet(http.MethodGet, base+"/healthz") == http.StatusOK
	}, "stack healthy")

	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.Equal(t, http.StatusOK, doJSON(t, http.MethodPost, base+"/api/auth/login", "",
		map[string]string{"email": "demo@mgx.dev", "password": "demo-password"}, &tok))

	const sessions = 6
	sids := make([]string, sessions)
	runs := make([]string, sessions)
	var wg sync.WaitGroup
	for i := range sessions {
		var s struct {
			ID string `json:"id"`
		}
		require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, base+"/api/sessions", tok.AccessToken,
			map[string]string{"title": fmt.Sprintf("scale-out %d", i)}, &s))
		sids[i] = s.ID
	}
	for i := range sessions {
		wg.Go(func() {
			var r struct {
				RunID string `json:"run_id"`
			}
			if code := doJSON(t, http.MethodPost, base+"/api/chat/messages", tok.AccessToken,
				map[string]string{"session_id": sids[i], "content": "go"}, &r); code == http.StatusCreated {
				runs[i] = r.RunID
			}
		})
	}
	wg.Wait()
	for i, r := range runs {
		require.NotEmpty(t, r, "message %d was accepted", i)
	}

	// The runs spread over every replica (each takes at most two at a time).
	eventuallyTrue(t, 60*time.Second, func() bool {
		for _, p := range agents {
			if len(executing(p.logs.String())) == 0 {
				return false
			}
		}
		return true
	}, "every replica executes runs")
	// The gateway balanced its calls too: more than one replica served PostMessage.
	served := 0
	for _, p := range agents {
		if strings.Contains(p.logs.String(), "grpc.method=PostMessage") {
			served++
		}
	}
	require.GreaterOrEqual(t, served, 2, "the gateway spreads calls over the replicas")

	// Kill a replica in the middle of its runs.
	victim := agents["agentd2"]
	victimRuns := executing(victim.logs.String())
	require.NotEmpty(t, victimRuns)
	victim.kill()

	// No run is lost: every one completes, the victim's on the survivors.
	for i, sid := range sids {
		eventuallyTrue(t, 90*time.Second, func() bool {
			var r struct {
				Status string `json:"status"`
			}
			return doJSON(t, http.MethodGet, base+"/api/sessions/"+sid+"/run", tok.AccessToken, nil, &r) == http.StatusOK &&
				r.Status == "completed"
		}, fmt.Sprintf("run %s of session %d completes", runs[i], i))
	}
	survivors := executing(agents["agentd1"].logs.String() + agents["agentd3"].logs.String())
	for run := range victimRuns {
		require.Contains(t, survivors, run, "run %s of the killed replica was taken over", run)
	}

	// Side effects ran at most once per run: each line appears once (a step cut off by the kill is
	// reported to the model as interrupted, not repeated).
	for _, sid := range sids {
		var out struct {
			Stdout string `json:"stdout"`
		}
		require.Equal(t, http.StatusOK, doJSON(t, http.MethodPost, base+"/api/sandbox/exec", tok.AccessToken,
			map[string]any{"session_id": sid, "command": "cat log.txt"}, &out))
		require.Equal(t, 1, strings.Count(out.Stdout, "a\n"), "session %s: %q", sid, out.Stdout)
		require.LessOrEqual(t, strings.Count(out.Stdout, "b\n"), 1, "session %s: %q", sid, out.Stdout)
	}
	t.Logf("runs per replica before the kill: agentd2 had %d; all %d runs completed", len(victimRuns), sessions)
}

var executingRE = regexp.MustCompile(`msg="executing run".*? run=([0-9a-f-]{36})`)

// executing returns the run ids a replica's log says it started executing.
func executing(logs string) map[string]bool {
	out := map[string]bool{}
	for _, m := range executingRE.FindAllStringSubmatch(logs, -1) {
		out[m[1]] = true
	}
	return out
}

// proc is a service process started by a test.
type proc struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

func startProc(t *testing.T, name, binary string, env []string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary), logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start(), name)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		// A graceful stop first, so sandboxd destroys its sandboxes; then nothing may remain.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.logs.String())
		}
	})
	return p
}

func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func eventuallyTrue(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out: %s", what)
		time.Sleep(100 * time.Millisecond)
	}
}

func doJSONQuiet(method, url string) int {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
