package stack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mgx-ai/mgx/pkg/stacktest"
)

// Every run: Alex appends "a", then marks that the long step has begun and spends a few seconds
// before appending "b", so runs overlap and a replica can be stopped in the middle of a side-effecting
// call. Every side effect is a line in a file of the sandbox, so the files show how often each ran.
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
        - {name: sandbox_shell, args: {command: "echo b >> started.txt; sleep 4; echo b >> log.txt"}}
    - tool_calls:
        - {name: send_message, args: {to: mike, content: "appended"}}
`

// TestScaleOut is the multi-replica proof, and the one proof of run takeover: three agentd replicas
// share one Redis behind one gateway, which balances its calls over them (a static replica list,
// round-robin). Concurrent sessions' runs spread over all three. One replica is killed with SIGKILL
// in the middle of a side-effecting call of each of its runs; later another is stopped with SIGTERM
// the same way. Every run still completes, taken over by the survivors: each resumes from its last
// checkpoint, the call that was cut off is reported to the model as interrupted instead of being run
// again, no completed call is replayed, and every session's event log stays gap-free.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every binary")
	}
	t.Parallel()
	script := filepath.Join(t.TempDir(), "scaleout.yaml")
	require.NoError(t, os.WriteFile(script, []byte(scaleOutScript), 0o600))
	st := stacktest.StartStack(t, stacktest.Spec{
		Agentd: 3,
		AgentdEnv: map[string]string{
			"AGENTD_SCRIPT_FILE": script,
			// Two runs at a time per replica, so six concurrent runs need all three replicas.
			"AGENTD_MAX_CONCURRENT_RUNS": "2", "AGENTD_RUN_LEASE_TTL": "3s",
		},
		GatewayEnv: map[string]string{"MGX_DEMO_EMAIL": "demo@mgx.dev", "MGX_DEMO_PASSWORD": "mgx-demo"},
	})
	base := st.URL()
	agents := map[string]*stacktest.Proc{}
	for _, p := range st.Agentd {
		agents[p.Name] = p
	}

	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.Equal(t, http.StatusOK, doJSON(t, http.MethodPost, base+"/api/auth/login", "",
		map[string]string{"email": "demo@mgx.dev", "password": "mgx-demo"}, &tok))
	session := func(title string) string {
		var s struct {
			ID string `json:"id"`
		}
		require.Equal(t, http.StatusCreated, doJSON(t, http.MethodPost, base+"/api/sessions", tok.AccessToken,
			map[string]string{"title": title}, &s))
		return s.ID
	}
	// post sends one message per session at once and returns each run's id by session.
	post := func(sids []string) map[string]string {
		runs := map[string]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, sid := range sids {
			wg.Go(func() {
				var r struct {
					RunID string `json:"run_id"`
				}
				if code := doJSON(t, http.MethodPost, base+"/api/chat/messages", tok.AccessToken,
					map[string]string{"session_id": sid, "content": "go"}, &r); code == http.StatusCreated {
					mu.Lock()
					runs[sid] = r.RunID
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, sid := range sids {
			require.NotEmpty(t, runs[sid], "the message to session %s was accepted", sid)
		}
		return runs
	}
	exec := func(sid, cmd string) string {
		var out struct {
			Stdout string `json:"stdout"`
		}
		require.Equal(t, http.StatusOK, doJSON(t, http.MethodPost, base+"/api/sandbox/exec", tok.AccessToken,
			map[string]any{"session_id": sid, "command": cmd}, &out))
		return out.Stdout
	}
	// stopMidCall waits until the replica executes runs and each of them is inside its long call,
	// then stops the replica with how, and returns the sessions of those runs. (The replica may pick
	// up another run meanwhile; that one is only held to the at-most-once checks.)
	stopMidCall := func(victim *stacktest.Proc, runs map[string]string, how func()) []string {
		var sids []string
		stacktest.Eventually(t, 60*time.Second, func() bool {
			sids = nil
			for run := range executing(victim.Log().String()) {
				for sid, r := range runs {
					if r == run {
						sids = append(sids, sid)
					}
				}
			}
			return len(sids) > 0
		}, "%s executes runs", victim.Name)
		for _, sid := range sids {
			stacktest.Eventually(t, 60*time.Second, func() bool { return exec(sid, "cat started.txt 2>/dev/null") != "" },
				"session %s's run is inside its long call", sid)
		}
		how()
		return sids
	}
	// completes waits for every run to complete, then checks what each session shows.
	completes := func(runs map[string]string, victimSessions []string) {
		for sid, run := range runs {
			stacktest.Eventually(t, 90*time.Second, func() bool {
				var r struct {
					Status string `json:"status"`
				}
				return doJSON(t, http.MethodGet, base+"/api/sessions/"+sid+"/run", tok.AccessToken, nil, &r) == http.StatusOK &&
					r.Status == "completed"
			}, "run %s of session %s completes", run, sid)
			// Side effects ran at most once per run: each line appears once (a step cut off by the stop
			// is reported to the model as interrupted, not repeated).
			out := exec(sid, "cat log.txt")
			require.Equal(t, 1, strings.Count(out, "a\n"), "session %s: %q", sid, out)
			require.LessOrEqual(t, strings.Count(out, "b\n"), 1, "session %s: %q", sid, out)
			// A run the stop reached before its long call got going reports that call as interrupted
			// without running it; none runs it twice.
			require.LessOrEqual(t, strings.Count(exec(sid, "cat started.txt 2>/dev/null"), "b\n"), 1, "session %s: the long call started at most once", sid)
			// The whole log, read through the gateway, is gap-free from 1.
			evs := readEvents(t, base, tok.AccessToken, sid, runEnded("completed"))
			for i, e := range evs {
				require.EqualValues(t, i+1, e.Sequence, "session %s: events in order, no gaps", sid)
			}
		}
		for _, sid := range victimSessions {
			require.Equal(t, "b\n", exec(sid, "cat started.txt"), "session %s: the long call the stop cut was not run again", sid)
			evs := readEvents(t, base, tok.AccessToken, sid, runEnded("completed"))
			var resumed, interrupted bool
			after := false
			for _, e := range evs {
				if e.Type == "status" && strings.Contains(e.Content, "resumed") {
					resumed, after = true, true
				}
				interrupted = interrupted || (e.Type == "tool_result" && strings.Contains(e.Content, "interrupted"))
				require.False(t, after && e.Type == "tool_call" && strings.Contains(e.Content, "echo a >>"),
					"session %s: a completed call is not replayed: %s", sid, describe(evs))
			}
			require.True(t, resumed, "session %s resumed on a survivor: %s", sid, describe(evs))
			require.True(t, interrupted, "session %s: the cut-off call is reported, not repeated: %s", sid, describe(evs))
		}
	}

	// Round 1: six concurrent runs spread over every replica (each takes at most two at a time).
	first := make([]string, 6)
	for i := range first {
		first[i] = session(fmt.Sprintf("scale-out %d", i))
	}
	runs := post(first)
	stacktest.Eventually(t, 60*time.Second, func() bool {
		for _, p := range agents {
			if len(executing(p.Log().String())) == 0 {
				return false
			}
		}
		return true
	}, "every replica executes runs")
	// The gateway balanced its calls too: more than one replica served PostMessage.
	served := 0
	for _, p := range agents {
		if p.Log().Contains("grpc.method=PostMessage") {
			served++
		}
	}
	require.GreaterOrEqual(t, served, 2, "the gateway spreads calls over the replicas")

	// Kill a replica in the middle of its runs: no run is lost, the victim's complete on the
	// survivors once their leases expire.
	killed := stopMidCall(agents["agentd2"], runs, agents["agentd2"].Kill)
	completes(runs, killed)
	survivors := executing(agents["agentd1"].Log().String() + agents["agentd3"].Log().String())
	for _, sid := range killed {
		require.Contains(t, survivors, runs[sid], "run %s of the killed replica was taken over", runs[sid])
	}
	t.Logf("round 1: agentd2 was killed in %d runs; all %d runs completed", len(killed), len(runs))

	// Round 2: a replica stopped with SIGTERM hands its runs back at once, and another resumes them
	// the same way.
	second := make([]string, 4)
	for i := range second {
		second[i] = session(fmt.Sprintf("hand-back %d", i))
	}
	runs = post(second)
	stopped := stopMidCall(agents["agentd3"], runs, func() {
		require.NoError(t, agents["agentd3"].Stop(stacktest.StopGrace), "agentd3 stops gracefully")
	})
	require.Contains(t, agents["agentd3"].Log().String(), "run handed back", "the stopping replica hands its runs back")
	completes(runs, stopped)
	t.Logf("round 2: agentd3 stopped gracefully in %d runs; all %d runs completed", len(stopped), len(runs))
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

// event is the part of a public event these tests read.
type event struct {
	Type     string         `json:"type"`
	Content  string         `json:"content"`
	Tool     string         `json:"tool"`
	Sequence int            `json:"sequence"`
	Data     map[string]any `json:"data"`
}

// runEnded reports a run's closing event with one of the statuses.
func runEnded(statuses ...string) func(event) bool {
	return func(e event) bool {
		st, _ := e.Data["status"].(string)
		for _, s := range statuses {
			if st == s && (e.Type == "run" || e.Type == "status" || e.Type == "error") {
				return true
			}
		}
		return false
	}
}

// readEvents replays a session's event log over SSE through the gateway until until holds.
func readEvents(t *testing.T, base, token, sid string, until func(event) bool) []event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/sessions/"+sid+"/events?after_seq=0", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var evs []event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var e event
		require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(data)), &e))
		evs = append(evs, e)
		if until(e) {
			return evs
		}
	}
	t.Fatalf("session %s: the event stream ended before the expected event: %v; got %s", sid, sc.Err(), describe(evs))
	return nil
}

func describe(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		c := e.Content
		if len(c) > 120 {
			c = c[:120] + "…"
		}
		fmt.Fprintf(&b, "\n  %d %s %s: %s", e.Sequence, e.Type, e.Tool, c)
	}
	return b.String()
}
