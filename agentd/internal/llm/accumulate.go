package llm

import "encoding/json"

// callAccumulator assembles streamed tool calls. OpenAI-style streams send a call's id and name in the
// first delta of an index and argument fragments after it; some providers reuse index 0 for every
// call, or send a whole call in one delta. A delta carrying a new id at an index that already holds a
// different call therefore starts a new call instead of being glued onto the old one; so does a named
// delta without id arriving at an index whose call is already complete JSON.
type callAccumulator struct {
	calls   []ToolCall
	byIndex map[int64]int // stream index → position in calls
}

// add merges a delta and returns the position of the call it belongs to.
func (a *callAccumulator) add(index int64, id, name, args string) int {
	if a.byIndex == nil {
		a.byIndex = map[int64]int{}
	}
	pos, ok := a.byIndex[index]
	if !ok || a.startsNew(pos, id, name) {
		a.calls = append(a.calls, ToolCall{})
		pos = len(a.calls) - 1
		a.byIndex[index] = pos
	}
	c := &a.calls[pos]
	if id != "" {
		c.ID = id
	}
	if name != "" && c.Name == "" {
		c.Name = name
	}
	c.Arguments += args
	return pos
}

// startsNew reports a delta that cannot continue the call at pos: it carries another id, or — from
// providers that send no ids — a name while the call there is already complete.
func (a *callAccumulator) startsNew(pos int, id, name string) bool {
	c := a.calls[pos]
	if id != "" && c.ID != "" {
		return c.ID != id
	}
	return id == "" && name != "" && c.Name != "" && json.Valid([]byte(c.Arguments))
}

func (a *callAccumulator) result() []ToolCall {
	// Calls without an id keep it empty: the workflow assigns ids unique within the run.
	for i := range a.calls {
		if a.calls[i].Arguments == "" {
			a.calls[i].Arguments = "{}"
		}
	}
	return a.calls
}
