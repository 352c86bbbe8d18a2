package runtime

import (
	"fmt"
	"strings"

	agentdv1 "github.com/mgx-ai/mgx/proto/gen/mgx/agentd/v1"

	"github.com/mgx-ai/mgx/agentd/internal/events"
)

// replyChars bounds one of Mike's earlier messages in the transcript; the user's are kept whole
// (the API caps them at 4000 characters).
const replyChars = 2000

// transcript is the session's conversation before the message startID, as the lead of a new run is
// told it: every message of the user and Mike's replies — never the members' narration or status
// lines, which the brief and the members' own memory cover. It is bounded by tokens, not by count:
// when it is too long, the oldest messages after the first (the original request, always kept) are
// left out, and one line says how many.
func transcript(msgs []*agentdv1.Message, startID string, budgetTokens int) string {
	var lines []string
	for _, m := range msgs {
		if m.GetId() == startID {
			break
		}
		text := strings.TrimSpace(m.GetContent())
		switch m.GetSender() {
		case events.SenderUser:
			lines = append(lines, "[user] "+text)
		case events.SenderMike:
			if len(text) > replyChars {
				text = strings.ToValidUTF8(text[:replyChars], "") + " […]"
			}
			lines = append(lines, "[Mike] "+text)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	limit := budgetTokens * 4
	if limit <= 0 {
		limit = 32000
	}
	first, rest := lines[0], lines[1:]
	size := len(first)
	keep := len(rest)
	for keep > 0 && size+len(rest[keep-1]) <= limit-len(first) {
		keep--
		size += len(rest[keep])
	}
	var b strings.Builder
	b.WriteString("Conversation so far in this session (the user's messages and Mike's replies; the team's working notes are left out):\n")
	b.WriteString(first)
	if keep > 0 {
		fmt.Fprintf(&b, "\n[… %d earlier messages left out to fit the context …]", keep)
	}
	for _, l := range rest[keep:] {
		b.WriteString("\n")
		b.WriteString(l)
	}
	return b.String()
}
