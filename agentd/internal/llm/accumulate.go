package llm

import "fmt"

// callAccumulator assembles streamed tool calls. OpenAI-style streams send a call's id and name in the
// first delta of an index and argument fragments after it; some providers reuse index 0 for every
// call, or send a whole call in one delta. A delta carrying a new id at an index that already holds a
// different call therefore starts a new call instead of being glued onto the old one.
type callAccumulator struct {
	calls   []ToolCall
	byIndex map[int64]int // stream index → position in calls
}

func (a *callAccumulator) add(index int64, id, name, args string) {
	if a.byIndex == nil {
		a.byIndex = map[int64]int{}
	}
	pos, ok := a.byIndex[index]
	if !ok || (id != "" && a.calls[pos].ID != "" && a.calls[pos].ID != id) {
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
}

func (a *callAccumulator) result() []ToolCall {
	for i := range a.calls {
		if a.calls[i].ID == "" {
			a.calls[i].ID = fmt.Sprintf("call_%d", i)
		}
		if a.calls[i].Arguments == "" {
			a.calls[i].Arguments = "{}"
		}
	}
	return a.calls
}
