package store

// Every Redis key sandboxd uses is built here. Shape: sandboxd:<entity>:{tag}:<suffix>,
// where the hash tag is the session id, so that every key a Lua script of one
// sandbox touches (record, exec leases, owner) lives in one cluster slot. The
// global indexes (activity, all sandboxes, pool) are only ever touched by
// single commands, never inside a script with per-sandbox keys.

// sandboxKey is the hash holding one sandbox's record.
func sandboxKey(sessionID string) string { return "sandboxd:sandbox:{" + sessionID + "}" }

// execsKey is the sorted set of a sandbox's running execs, scored by the
// unix-ms expiry of each exec's lease.
func execsKey(sessionID string) string { return "sandboxd:sandbox:{" + sessionID + "}:execs" }

// ownerKey records the owner of a session. It outlives the sandbox (a reaped
// sandbox is re-created for its owner) and is removed only when the session
// is forgotten.
func ownerKey(sessionID string) string { return "sandboxd:session:{" + sessionID + "}:owner" }

// userSandboxesKey is the set of session ids with a live sandbox of a user.
func userSandboxesKey(userID string) string { return "sandboxd:user:{" + userID + "}:sandboxes" }

// activityKey is the activity index: session id scored by last activity
// (unix ms). The reaper reads only its expired range, so a sweep costs
// O(expired), not O(sandboxes).
const activityKey = "sandboxd:activity"

// sandboxesKey is the set of every session id with a sandbox record.
const sandboxesKey = "sandboxd:sandboxes"

// poolKey is the set of warm sandboxes (JSON PoolEntry values) ready to be
// claimed.
const poolKey = "sandboxd:pool"

// poolRefillKey is the lease of the replica currently refilling the pool.
const poolRefillKey = "sandboxd:pool:refill"

// previewSigningKey holds the HMAC key of preview tokens when SANDBOXD_PREVIEW_SECRET is unset: random,
// made by whichever replica starts first, shared by all of them.
const previewSigningKey = "sandboxd:preview:signing-key"

// previewRevokedKey holds the unix second through which every preview capability of a session is
// revoked (an explicit rotation): a capability expiring at or before it is refused. It expires
// itself once every capability it revokes has.
func previewRevokedKey(sessionID string) string {
	return "sandboxd:preview:{" + sessionID + "}:revoked"
}

// KeyUserExecs holds the commands a user runs at once, across sandboxes and replicas, as quota
// slots (pkg/quota).
func KeyUserExecs(userID string) string { return "sandboxd:user:{" + userID + "}:execs" }

// KeyUserProcessStart serialises a user's process starts across replicas (a pkg/quota slot of one),
// so that counting the running processes and starting one more is one step.
func KeyUserProcessStart(userID string) string {
	return "sandboxd:user:{" + userID + "}:process_start"
}

// workspaceKey is the hash mapping a session to its workspace (the id naming its volumes) and the
// workspace's state. Like the owner it outlives every sandbox of the session, and goes only when the
// session is forgotten.
func workspaceKey(sessionID string) string { return "sandboxd:session:{" + sessionID + "}:workspace" }

// workspacesKey is the set of every session id with a workspace (reconciliation walks it).
const workspacesKey = "sandboxd:workspaces"

// volumeEpochKey holds the unix-ms time this Redis first saw sandboxd's volumes reconciled. A volume
// created before it predates this Redis's memory (the data was lost or replaced): reconciliation never
// removes such a volume, it only reports it.
const volumeEpochKey = "sandboxd:volumes:epoch"

// keptVolumesKey is the set of volume names reconciliation must never remove: volumes found under a
// session's workspace name that were not that session's (foreign), kept for an operator to look at.
const keptVolumesKey = "sandboxd:volumes:kept"
