package store

import "github.com/redis/go-redis/v9"

// Record fields.
const (
	fSession     = "session_id"
	fOwner       = "owner_id"
	fInstanceID  = "instance_id"
	fName        = "instance_name"
	fDriver      = "driver"
	fState       = "state"
	fSocket      = "socket"
	fEndpoint    = "endpoint"
	fWorkspace   = "workspace"
	fPID         = "agent_pid"
	fCreated     = "created_ms"
	fLastActive  = "last_active_ms"
	fHolder      = "holder"
	fHolderUntil = "holder_until_ms"
)

// beginCreateScript claims the right to create a session's sandbox.
//
// KEYS[1] record, KEYS[2] owner
// ARGV[1] session id, ARGV[2] owner id, ARGV[3] holder, ARGV[4] now ms, ARGV[5] lease until ms
// Returns "owner" when the session belongs to someone else; "create" when the
// caller now holds a fresh "creating" record (or took over one whose creator's
// lease expired); otherwise the current state ("running", "creating",
// "reaping"), and the caller waits or uses it.
var beginCreateScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[2] then return 'owner' end
if not owner then redis.call('SET', KEYS[2], ARGV[2]) end
local state = redis.call('HGET', KEYS[1], 'state')
if state then
  if state == 'running' then return 'running' end
  local until_ms = tonumber(redis.call('HGET', KEYS[1], 'holder_until_ms') or '0')
  if until_ms >= tonumber(ARGV[4]) then return state end
  if state == 'reaping' then return state end
  redis.call('HSET', KEYS[1], 'holder', ARGV[3], 'holder_until_ms', ARGV[5])
  return 'create'
end
redis.call('HSET', KEYS[1], 'session_id', ARGV[1], 'owner_id', ARGV[2], 'state', 'creating',
  'holder', ARGV[3], 'holder_until_ms', ARGV[5], 'created_ms', ARGV[4], 'last_active_ms', ARGV[4])
return 'create'
`)

// finishCreateScript turns the caller's "creating" record into "running".
//
// KEYS[1] record
// ARGV[1] holder, ARGV[2] now ms, then field/value pairs to set
// Returns 1, or 0 when the caller no longer holds the record (it was
// destroyed or taken over meanwhile): the caller must remove what it created.
var finishCreateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'creating' or redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
redis.call('HSET', KEYS[1], 'state', 'running', 'last_active_ms', ARGV[2])
redis.call('HDEL', KEYS[1], 'holder', 'holder_until_ms')
return 1
`)

// claimDestroyScript moves a record to "reaping" for the caller, who then
// removes the instance and deletes the record. Two replicas sweeping at once
// both run this; exactly one gets 1.
//
// KEYS[1] record, KEYS[2] exec leases
// ARGV[1] holder, ARGV[2] now ms, ARGV[3] lease until ms, ARGV[4] idle cutoff
// ms ("" = unconditional destroy)
// Returns 1 claimed; 0 no record or another holder's live claim; -1 active
// since the cutoff; -2 an exec is running.
var claimDestroyScript = redis.NewScript(`
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local now = tonumber(ARGV[2])
if state == 'reaping' and tonumber(redis.call('HGET', KEYS[1], 'holder_until_ms') or '0') >= now then
  return 0
end
if ARGV[4] ~= '' then
  if state ~= 'running' and state ~= 'reaping' then return 0 end
  if tonumber(redis.call('HGET', KEYS[1], 'last_active_ms') or '0') > tonumber(ARGV[4]) then return -1 end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) > 0 then return -2 end
end
redis.call('HSET', KEYS[1], 'state', 'reaping', 'holder', ARGV[1], 'holder_until_ms', ARGV[3])
return 1
`)

// deleteScript deletes a record the caller holds.
//
// KEYS[1] record, KEYS[2] exec leases
// ARGV[1] holder
// Returns 1 deleted, 0 not held by the caller.
var deleteScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`)

// beginExecScript registers a running exec so the reaper leaves the sandbox
// alone until the exec ends or its lease lapses (a crashed sandboxd).
//
// KEYS[1] record, KEYS[2] exec leases
// ARGV[1] exec id, ARGV[2] now ms, ARGV[3] lease until ms
// Returns 1, or 0 when the sandbox is not running (being reaped or created).
var beginExecScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], 'last_active_ms', ARGV[2])
return 1
`)

// endExecScript drops a finished exec's lease and records the activity,
// without resurrecting a deleted record.
//
// KEYS[1] record, KEYS[2] exec leases
// ARGV[1] exec id, ARGV[2] now ms
// Returns 1 touched, 0 no record.
var endExecScript = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_active_ms', ARGV[2])
return 1
`)

// touchScript records activity without resurrecting a deleted record.
//
// KEYS[1] record
// ARGV[1] now ms
// Returns 1 touched, 0 no record.
var touchScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_active_ms', ARGV[1])
return 1
`)

// bindWorkspaceScript binds a workspace to a session unless it has one.
//
// KEYS[1] workspace binding
// ARGV[1] workspace id, ARGV[2] state, ARGV[3] now ms
// Returns {id, state, created_ms} of the binding in force afterwards.
var bindWorkspaceScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', ARGV[2], 'created_ms', ARGV[3])
end
return redis.call('HMGET', KEYS[1], 'id', 'state', 'created_ms')
`)

// setWorkspaceStateScript moves a binding to a state if it still names the caller's workspace.
//
// KEYS[1] workspace binding
// ARGV[1] workspace id, ARGV[2] state
// Returns 1, or 0 when the binding names another workspace (or none).
var setWorkspaceStateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
return 1
`)

// replaceWorkspaceScript binds a new workspace in place of the caller's.
//
// KEYS[1] workspace binding
// ARGV[1] old workspace id, ARGV[2] new id, ARGV[3] state, ARGV[4] now ms
// Returns 1, or 0 when the binding does not name the old workspace.
var replaceWorkspaceScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'state', ARGV[3], 'created_ms', ARGV[4])
return 1
`)
