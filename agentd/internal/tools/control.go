package tools

// Arguments of the control tools, which the workflow handles itself.

// PlanTask is one task of plan_append.
type PlanTask struct {
	ID        string   `json:"id,omitempty"`
	Title     string   `json:"title"`
	Assignee  string   `json:"assignee"`
	DependsOn []string `json:"depends_on,omitempty"`
}

// PlanAppendArgs are plan_append's arguments.
type PlanAppendArgs struct {
	Tasks []PlanTask `json:"tasks"`
}

// PlanUpdateArgs are plan_update's arguments.
type PlanUpdateArgs struct {
	TaskID string `json:"task_id"`
	Status string `json:"status,omitempty"`
	Note   string `json:"note,omitempty"`
}

// SummaryArgs are the arguments of plan_finish and end.
type SummaryArgs struct {
	Summary string `json:"summary,omitempty"`
}

// SendMessageArgs are send_message's arguments.
type SendMessageArgs struct {
	To      string `json:"to"`
	Content string `json:"content"`
}

// AskHumanArgs are ask_human's arguments.
type AskHumanArgs struct {
	Question string `json:"question"`
}

// ReplyToHumanArgs are reply_to_human's arguments.
type ReplyToHumanArgs struct {
	Content string `json:"content"`
}

var controlSpecs = []*Spec{
	define[PlanAppendArgs](Spec{Name: PlanAppend, Control: true, Description: "Append tasks to the plan.",
		Schema: `{"type":"object","properties":{"tasks":{"type":"array","minItems":1,"maxItems":20,"items":{"type":"object","properties":{"id":{"type":"string","maxLength":64},"title":{"type":"string","minLength":1,"maxLength":500},"assignee":{"type":"string"},"depends_on":{"type":"array","items":{"type":"string"}}},"required":["title","assignee"],"additionalProperties":false}}},"required":["tasks"],"additionalProperties":false}`}, nil),
	define[PlanUpdateArgs](Spec{Name: PlanUpdate, Control: true, Description: "Update a task's status (todo, in_progress, done, failed) or note.",
		Schema: `{"type":"object","properties":{"task_id":{"type":"string","minLength":1},"status":{"enum":["todo","in_progress","done","failed"]},"note":{"type":"string","maxLength":2000}},"required":["task_id"],"additionalProperties":false}`}, nil),
	define[SummaryArgs](Spec{Name: PlanFinish, Control: true, Description: "Mark the plan finished.",
		Schema: `{"type":"object","properties":{"summary":{"type":"string","maxLength":4000}},"additionalProperties":false}`}, nil),
	define[SendMessageArgs](Spec{Name: SendMessage, Control: true, Description: "Send a message to a team member (the lead delegates a task and waits for its report) or, from a member, report back to mike.",
		Schema: `{"type":"object","properties":{"to":{"type":"string","minLength":1},"content":{"type":"string","minLength":1,"maxLength":20000}},"required":["to","content"],"additionalProperties":false}`}, nil),
	define[AskHumanArgs](Spec{Name: AskHuman, Control: true, Description: "Ask the user a question and wait for the answer.",
		Schema: `{"type":"object","properties":{"question":{"type":"string","minLength":1,"maxLength":4000}},"required":["question"],"additionalProperties":false}`}, nil),
	define[ReplyToHumanArgs](Spec{Name: ReplyToHuman, Control: true, Description: "Send a message to the user.",
		Schema: `{"type":"object","properties":{"content":{"type":"string","minLength":1,"maxLength":20000}},"required":["content"],"additionalProperties":false}`}, nil),
	define[SummaryArgs](Spec{Name: End, Control: true, Description: "Finish your work (members return to the lead; the lead ends the run).",
		Schema: `{"type":"object","properties":{"summary":{"type":"string","maxLength":4000}},"additionalProperties":false}`}, nil),
}
