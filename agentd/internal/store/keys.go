package store

// Every Redis key agentd uses is built here. Shape: agentd:<entity>:{<tag>}:<suffix>, where the hash tag
// is the aggregate id, so all keys one Lua script touches for a session share a cluster slot.

// RunQueueStream is the stream runs are queued on; replicas read it through RunQueueGroup.
const (
	RunQueueStream = "agentd:runqueue:{runs}:stream"
	RunQueueGroup  = "agentd-runners"
	// CancelChannel carries run ids to cancel, so the replica executing a run stops it at once.
	CancelChannel = "agentd:runqueue:{runs}:cancel"
)

func sessionKey(sid string) string         { return "agentd:session:{" + sid + "}" }
func sessionSeqKey(sid string) string      { return "agentd:session:{" + sid + "}:seq" }
func sessionEventsKey(sid string) string   { return "agentd:session:{" + sid + "}:events" }
func sessionMessagesKey(sid string) string { return "agentd:session:{" + sid + "}:messages" }
func sessionActiveKey(sid string) string   { return "agentd:session:{" + sid + "}:active_run" }
func sessionRunsKey(sid string) string     { return "agentd:session:{" + sid + "}:runs" }
func sessionLastRunKey(sid string) string  { return "agentd:session:{" + sid + "}:last_run" }
func runKey(sid, rid string) string        { return "agentd:session:{" + sid + "}:run:" + rid }
func runLeaseKey(sid, rid string) string   { return "agentd:session:{" + sid + "}:run:" + rid + ":lease" }
func runToolsKey(sid, rid string) string   { return "agentd:session:{" + sid + "}:run:" + rid + ":tools" }
func runInboxKey(sid, rid string) string   { return "agentd:session:{" + sid + "}:run:" + rid + ":inbox" }
func sessionConvsKey(sid string) string    { return "agentd:session:{" + sid + "}:convs" }
func convKey(sid, key string) string       { return "agentd:session:{" + sid + "}:conv:" + key }
func userSessionsKey(uid string) string    { return "agentd:user:{" + uid + "}:sessions" }

// Artifacts of a session (screenshots, charts): metadata by id, the bytes by id, and their order.
func sessionArtifactsKey(sid string) string    { return "agentd:session:{" + sid + "}:artifacts" }
func sessionArtifactDataKey(sid string) string { return "agentd:session:{" + sid + "}:artifacts:data" }
func sessionArtifactIndexKey(sid string) string {
	return "agentd:session:{" + sid + "}:artifacts:index"
}
