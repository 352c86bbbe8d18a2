// Package workflow is Mike's orchestration: the lead plans and delegates, each member runs its own tool
// loop until it reports back, the lead reviews and goes on, and everything is bounded. The whole
// progress of a run is the State below, checkpointed after every step, so a run resumes on any replica
// exactly where the last one stopped — and the next run of the session starts from it: the plan, each
// member's conversation and how the run ended carry over.
package workflow

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/mgx-ai/mgx/agentd/internal/llm"
)

// State is a run's checkpoint. It is small — the conversations it names are kept apart, append-only
// (Conv), so a checkpoint writes what a step added, not everything the run said so far.
type State struct {
	// Convs are the conversations by key: the lead's of this run and each member's, which persist
	// across the session's runs (a re-delegation resumes the member's conversation).
	Convs map[string]*Conv `json:"convs"`
	// Frames is the stack of agents at work: the lead at the bottom, the member it delegated to on top.
	Frames      []Frame `json:"frames"`
	NextFrameID int     `json:"next_frame_id"`
	// Plan persists across the session's runs.
	Plan         []Task `json:"plan,omitempty"`
	PlanFinished bool   `json:"plan_finished,omitempty"`
	// Counters of this run, bounded by Limits.
	Steps     int   `json:"steps"`
	LeadSteps int   `json:"lead_steps,omitempty"`
	ToolCalls int   `json:"tool_calls"`
	Tokens    int64 `json:"tokens"`
	// Unpriced lists the models of this run without a known price (each is announced once), and
	// UsageEstimated says some of the run's token counts are estimates, not the provider's.
	Unpriced       []string `json:"unpriced,omitempty"`
	UsageEstimated bool     `json:"usage_estimated,omitempty"`
	// WaitingCall is the key of the ask_human call the run waits on; Answer is the user's reply once
	// it arrived.
	WaitingCall string `json:"waiting_call,omitempty"`
	Answer      string `json:"answer,omitempty"`
	// Inbox counts the messages the user posted while the run was active that were handed to the
	// lead; Pending holds what waits for the lead's next turn (a resumed run's new request).
	Inbox   int      `json:"inbox,omitempty"`
	Pending []string `json:"pending,omitempty"`
	// Replied says the lead spoke to the user (reply_to_human, ask_human, a shown end summary) since
	// the user last wrote; Summary is what it last told the user, for the next run's brief.
	Replied bool   `json:"replied,omitempty"`
	Summary string `json:"summary,omitempty"`
	// ContextCap is a context budget (tokens) learned from the provider rejecting a longer request;
	// it lowers the configured one for the rest of the run.
	ContextCap int `json:"context_cap,omitempty"`
	// Last is how the session's previous run ended (for the brief).
	Last LastRun `json:"last,omitempty"`
	// Original is the user's first request in the session and Request their latest message: every
	// brief quotes both, so a member knows what the user actually asked, not only Mike's wording.
	Original string `json:"original,omitempty"`
	Request  string `json:"request,omitempty"`
	// Drop are stored conversations the next checkpoint deletes (a finished run's lead's).
	Drop []string `json:"drop,omitempty"`
}

// Conv is one agent's conversation. Its messages are stored apart as an append-only list: Messages
// (not in the checkpoint's JSON) are the list's entries from Base on, of which the first Saved are
// stored. A condensation starts a new view at the end of the list (Base moves, Saved drops to 0), so
// even that only appends.
type Conv struct {
	Key      string        `json:"key"`
	Agent    string        `json:"agent"`
	Base     int           `json:"base"`
	Saved    int           `json:"saved"`
	Messages []llm.Message `json:"-"`
	// Condensed counts the condensations of this conversation.
	Condensed int `json:"condensed,omitempty"`
}

// Frame is an agent at work on a task within the run.
type Frame struct {
	ID    int    `json:"id"`
	Agent string `json:"agent"`
	Conv  string `json:"conv"`
	// ParentCall is the id of the lead's send_message call this frame answers.
	ParentCall string `json:"parent_call,omitempty"`
	// Task is the plan task this delegation works on, if any.
	Task string `json:"task,omitempty"`
	// Steps counts this frame's model calls, bounded by the agent's budget per task.
	Steps int `json:"steps,omitempty"`
	// Invalid counts consecutive unusable outputs (bad arguments, refused tools).
	Invalid int `json:"invalid,omitempty"`
	// Recent holds the signatures — call and result — of the latest tool calls, for repetition
	// detection; Nudged is the signature the agent was already warned about.
	Recent []string `json:"recent,omitempty"`
	Nudged string   `json:"nudged,omitempty"`
	// Asked says the lead was already asked to go on after answering without a tool call; Urged,
	// that it was asked to reply before ending.
	Asked bool `json:"asked,omitempty"`
	Urged bool `json:"urged,omitempty"`
}

// Task is one entry of the plan.
type Task struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Assignee  string   `json:"assignee"`
	DependsOn []string `json:"depends_on,omitempty"`
	Status    string   `json:"status"`
	Note      string   `json:"note,omitempty"`
}

// Task statuses. Blocked and skipped are set at a run's end for tasks it left open.
const (
	TaskTodo       = "todo"
	TaskInProgress = "in_progress"
	TaskDone       = "done"
	TaskFailed     = "failed"
	TaskBlocked    = "blocked"
	TaskSkipped    = "skipped"
)

// Open reports a task still to be worked on.
func (t Task) Open() bool {
	return t.Status == TaskTodo || t.Status == TaskInProgress || t.Status == TaskBlocked
}

func (st *State) conv(f *Frame) *Conv { return st.Convs[f.Conv] }

func (st *State) top() *Frame { return &st.Frames[len(st.Frames)-1] }

// add appends messages to the frame's conversation.
func (st *State) add(f *Frame, msgs ...llm.Message) {
	c := st.conv(f)
	c.Messages = append(c.Messages, msgs...)
}

// pendingCall returns the first call of the frame's last model turn that has no result yet.
func (st *State) pendingCall(f *Frame) (llm.ToolCall, bool) {
	msgs := st.conv(f).Messages
	last := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == llm.RoleAssistant {
			last = i
			break
		}
		if msgs[i].Role == llm.RoleUser {
			return llm.ToolCall{}, false
		}
	}
	if last < 0 {
		return llm.ToolCall{}, false
	}
	resolved := 0
	for _, m := range msgs[last+1:] {
		if m.Role == llm.RoleTool {
			resolved++
		}
	}
	calls := msgs[last].ToolCalls
	if resolved < len(calls) {
		return calls[resolved], true
	}
	return llm.ToolCall{}, false
}

// Delta is what a checkpoint adds to one stored conversation: Messages appended to the list Key,
// whose length must be Expect before (a longer list holds entries of a step that never checkpointed
// and is cut back first).
type Delta struct {
	Key      string
	Expect   int
	Messages [][]byte
	// Drop deletes the conversation instead.
	Drop bool
}

// Deltas returns what the next checkpoint must append to each conversation, in key order, and the
// conversations it deletes.
func (st *State) Deltas() ([]Delta, error) {
	var out []Delta
	for _, k := range st.Drop {
		out = append(out, Delta{Key: k, Drop: true})
	}
	for _, k := range slices.Sorted(maps.Keys(st.Convs)) {
		c := st.Convs[k]
		if c.Saved >= len(c.Messages) {
			continue
		}
		d := Delta{Key: c.Key, Expect: c.Base + c.Saved}
		for _, m := range c.Messages[c.Saved:] {
			b, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			d.Messages = append(d.Messages, b)
		}
		out = append(out, d)
	}
	return out, nil
}

// Commit prepares a checkpoint: what to append to the stored conversations, and the head that
// describes them once appended. undo takes the preparation back if the checkpoint is not written.
func (st *State) Commit() (head []byte, deltas []Delta, undo func(), err error) {
	deltas, err = st.Deltas()
	if err != nil {
		return nil, nil, nil, err
	}
	saved := make(map[string]int, len(st.Convs))
	for k, c := range st.Convs {
		saved[k] = c.Saved
		c.Saved = len(c.Messages)
	}
	drop := st.Drop
	st.Drop = nil
	undo = func() {
		for k, c := range st.Convs {
			if n, ok := saved[k]; ok {
				c.Saved = n
			}
		}
		st.Drop = drop
	}
	head, err = st.Head()
	if err != nil {
		undo()
		return nil, nil, nil, err
	}
	return head, deltas, undo, nil
}

// Head is the checkpoint's own JSON (without the conversations' messages).
func (st *State) Head() ([]byte, error) { return json.Marshal(st) }

// ReadHead decodes a checkpoint's head; its conversations' messages are loaded apart (Load).
func ReadHead(b []byte) (*State, error) {
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if st.Convs == nil {
		st.Convs = map[string]*Conv{}
	}
	return st, nil
}

// Load fills each conversation with its stored messages (the list entries Base..Base+Saved-1, as
// read raw).
func (st *State) Load(raw map[string][][]byte) error {
	for _, c := range st.Convs {
		c.Messages = make([]llm.Message, 0, len(raw[c.Key]))
		for _, b := range raw[c.Key] {
			var m llm.Message
			if err := json.Unmarshal(b, &m); err != nil {
				return err
			}
			c.Messages = append(c.Messages, m)
		}
		if len(c.Messages) != c.Saved {
			return errShortConversation
		}
	}
	return nil
}

// ConvKeys lists the stored conversations the state refers to.
func (st *State) ConvKeys() []string {
	out := make([]string, 0, len(st.Convs))
	for _, c := range st.Convs {
		out = append(out, c.Key)
	}
	slices.Sort(out)
	return out
}
