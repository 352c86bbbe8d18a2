package store

import "github.com/redis/go-redis/v9"

// appendLua appends one event to a session's log: the sequence comes from the session's counter and is
// also the stream entry id ("<seq>-0"), so a reader resumes after any sequence with XRANGE/XREAD and
// sees neither gaps nor duplicates. A message is pushed to the history in the same step, which is what
// keeps the history and the stream in agreement. The sequence is then published on a channel named
// like the stream, waking the replicas that follow the session (see Hub).
// Expects KEYS[1] session, KEYS[2] seq counter, KEYS[3] events stream, KEYS[4] messages list.
const appendLua = `
local function append(event, message)
  local seq = redis.call('INCR', KEYS[2])
  redis.call('XADD', KEYS[3], seq .. '-0', 'e', event)
  if message ~= '' then redis.call('RPUSH', KEYS[4], message) end
  redis.call('PUBLISH', KEYS[3], seq)
  return seq
end
local function fenced(leaseKey, token)
  return token == '' or redis.call('GET', leaseKey) == token
end
`

// appendEventScript appends an event unless the session is gone or, for a run's events, the caller no
// longer holds the run's lease (a replica that lost its run must not write into the log).
//
// KEYS: 1 session, 2 seq, 3 events, 4 messages, 5 run lease
// ARGV: 1 event JSON, 2 message JSON or "", 3 lease token or "" (unfenced)
// Returns the sequence, 0 when the session does not exist, -1 when the lease is lost.
var appendEventScript = redis.NewScript(appendLua + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not fenced(KEYS[5], ARGV[3]) then return -1 end
return append(ARGV[1], ARGV[2])
`)

// startRunScript stores the user's message and either starts a run, answers the run that waits for the
// user (ask_human), or — while a run is queued or running — hands the message to that run: it is
// pushed on the run's inbox, which the lead reads at its next turn (steering). The caller read the
// active run id first and passes it as the expected value: a mismatch means another message raced
// us, and the caller retries. A new run records the run before it (prev_run): the next run continues
// from what that one left.
//
// KEYS: 1 session, 2 seq, 3 events, 4 messages, 5 active run id, 6 new run, 7 active run (or new run
//
//	when none is expected), 8 session's run set, 9 last run id, 10 active run's inbox (or new run's)
//
// ARGV: 1 owner, 2 expected active run id or "", 3 new run id, 4 event JSON, 5 message JSON,
//
//	6 now (unix ms), 7 message text, 8 message id, 9 session id, 10 "1" to only answer a waiting run
//
// Returns {outcome, run id}: outcome "started", "answer", "steered", "nowait", "retry" or "notfound".
var startRunScript = redis.NewScript(appendLua + `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {'notfound', ''} end
local active = redis.call('GET', KEYS[5]) or ''
if active ~= ARGV[2] then return {'retry', active} end
local st = false
if active ~= '' then st = redis.call('HGET', KEYS[7], 'status') end
if ARGV[10] == '1' and st ~= 'waiting' then return {'nowait', active} end
if active ~= '' then
  if st == 'waiting' then
    redis.call('HSET', KEYS[7], 'status', 'queued', 'answer', ARGV[7], 'updated_at', ARGV[6])
    append(ARGV[4], ARGV[5])
    return {'answer', active}
  end
  if st == 'queued' or st == 'running' then
    redis.call('RPUSH', KEYS[10], ARGV[7])
    append(ARGV[4], ARGV[5])
    return {'steered', active}
  end
  -- A finished run still marked active (its finisher died between steps) is replaced.
end
local prev = redis.call('GET', KEYS[9]) or ''
redis.call('SET', KEYS[5], ARGV[3])
redis.call('HSET', KEYS[6], 'id', ARGV[3], 'session_id', ARGV[9], 'owner', ARGV[1], 'status', 'queued',
  'message_id', ARGV[8], 'prompt', ARGV[7], 'created_at', ARGV[6], 'updated_at', ARGV[6], 'prev_run', prev)
redis.call('SADD', KEYS[8], ARGV[3])
redis.call('SET', KEYS[9], ARGV[3])
append(ARGV[4], ARGV[5])
return {'started', ARGV[3]}
`)

// acquireLeaseScript takes a run's lease so this replica may execute it. A live lease held by another
// replica wins; an expired one (its replica died) is taken over.
//
// KEYS: 1 run, 2 lease
// ARGV: 1 token, 2 ttl ms, 3 now (unix ms)
// Returns "ok", "held", "gone" (no such run) or the run's terminal/waiting status.
var acquireLeaseScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'gone' end
if st ~= 'queued' and st ~= 'running' then return st end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 'held' end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'running', 'lease_owner', ARGV[1], 'updated_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 'ok'
`)

// renewLeaseScript extends the lease only while the caller still holds it (compare-and-set).
//
// KEYS: 1 run, 2 lease
// ARGV: 1 token, 2 ttl ms
// Returns -1 when the lease is lost, else 1 when the run was asked to cancel, 0 otherwise.
var renewLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return 1 end
return 0
`)

// checkpointScript saves a run's state after a step — its small head, and what the step appended to
// each conversation — and adds the step's usage to the run and the session. Conversations are
// append-only lists, so a step writes what it added, not the whole conversation again: bytes per step
// stay flat however long the run. A list longer than the head expects holds entries of a step that
// never checkpointed (its replica died between steps) and is cut back first.
//
// KEYS: 1 session, 2 run, 3 lease, 4 session's conversation set, 5.. one list per conversation below
// ARGV: 1 token, 2 head JSON, 3 input tokens, 4 output tokens, 5 cost (USD), 6 now (unix ms),
// 7 cache-read tokens, 8 cache-write tokens (both part of the input tokens), 9 number of
// conversations, then per conversation: its expected length before the append (-1 deletes it), the
// number of entries, the entries.
// Returns 1, -1 when the lease is lost, -2 when a conversation is shorter than expected (lost).
var checkpointScript = redis.NewScript(`
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local pos = 10
for i = 1, tonumber(ARGV[9]) do
  local key = KEYS[4 + i]
  local expect = tonumber(ARGV[pos])
  local n = tonumber(ARGV[pos + 1])
  pos = pos + 2
  if expect < 0 then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[4], key)
  else
    local len = redis.call('LLEN', key)
    if len < expect then return -2 end
    if len > expect then
      if expect == 0 then redis.call('DEL', key) else redis.call('LTRIM', key, 0, expect - 1) end
    end
    local j = 0
    while j < n do
      local k = math.min(n - j, 500)
      redis.call('RPUSH', key, unpack(ARGV, pos + j, pos + j + k - 1))
      j = j + k
    end
    if n > 0 then redis.call('SADD', KEYS[4], key) end
    pos = pos + n
  end
end
redis.call('HSET', KEYS[2], 'checkpoint', ARGV[2], 'updated_at', ARGV[6])
for _, k in ipairs({KEYS[1], KEYS[2]}) do
  redis.call('HINCRBY', k, 'input_tokens', ARGV[3])
  redis.call('HINCRBY', k, 'output_tokens', ARGV[4])
  redis.call('HINCRBYFLOAT', k, 'cost_usd', ARGV[5])
  redis.call('HINCRBY', k, 'cache_read_tokens', ARGV[7])
  redis.call('HINCRBY', k, 'cache_write_tokens', ARGV[8])
end
return 1
`)

// toolBeginScript records that a tool call is about to run, keyed by its call id. When a record exists
// the call ran (or started) before — under this or a dead replica — and it is returned instead, so the
// caller never executes a side-effecting call twice.
//
// KEYS: 1 run's tool records, 2 lease
// ARGV: 1 token, 2 call id, 3 "started" record JSON
// Returns "" when recorded now, the existing record, or -1 when the lease is lost.
var toolBeginScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local existing = redis.call('HGET', KEYS[1], ARGV[2])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return ''
`)

// toolEndScript records a tool call's result.
//
// KEYS: 1 run's tool records, 2 lease
// ARGV: 1 token, 2 call id, 3 result record JSON
// Returns 1, or -1 when the lease is lost.
var toolEndScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
`)

// finishRunScript moves a run to a final status, or to "waiting" for the user, releases its lease and
// appends the closing event. Only a terminal status frees the session for the next run. A run about
// to complete while its inbox holds messages its lead has not read is not finished: the user wrote
// meanwhile, and the run goes on (the caller re-enters it).
//
// KEYS: 1 session, 2 seq, 3 events, 4 messages, 5 active run id, 6 run, 7 lease, 8 run's inbox
// ARGV: 1 token ("" when no lease is held, e.g. a queued run cancelled), 2 status, 3 event JSON or "",
//
//	4 message JSON or "", 5 now (unix ms), 6 error text, 7 run id, 8 question the run waits on,
//	9 inbox messages the lead read ("" not to check)
//
// Returns the event's sequence (0 without event), -1 when the lease is lost, -2 when unread
// messages keep the run going.
var finishRunScript = redis.NewScript(appendLua + `
if not fenced(KEYS[7], ARGV[1]) then return -1 end
if ARGV[9] ~= '' and redis.call('LLEN', KEYS[8]) > tonumber(ARGV[9]) then return -2 end
redis.call('HSET', KEYS[6], 'status', ARGV[2], 'updated_at', ARGV[5], 'error', ARGV[6], 'question', ARGV[8])
if ARGV[2] ~= 'waiting' and redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end
redis.call('DEL', KEYS[7])
if ARGV[3] == '' or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return append(ARGV[3], ARGV[4])
`)

// cancelRunScript cancels the session's active run. A run nobody executes (queued or waiting for the
// user) is finished here; a running one is flagged, and its replica stops it (told over pub/sub, and
// from the flag at its next lease renewal should the message be lost).
//
// KEYS: 1 session, 2 seq, 3 events, 4 messages, 5 active run id, 6 run
// ARGV: 1 owner, 2 run id, 3 event JSON, 4 now (unix ms), 5 its history entry JSON or ""
// Returns "notfound", "inactive", "cancelled" or "signalled".
var cancelRunScript = redis.NewScript(appendLua + `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 'notfound' end
if (redis.call('GET', KEYS[5]) or '') ~= ARGV[2] or ARGV[2] == '' then return 'inactive' end
local st = redis.call('HGET', KEYS[6], 'status')
if st == 'waiting' or st == 'queued' then
  redis.call('HSET', KEYS[6], 'status', 'cancelled', 'updated_at', ARGV[4])
  redis.call('DEL', KEYS[5])
  append(ARGV[3], ARGV[5])
  return 'cancelled'
end
redis.call('HSET', KEYS[6], 'cancel', '1')
return 'signalled'
`)

// indexSessionScript adds a session to its owner's index unless the owner has the maximum number of
// sessions already.
//
// KEYS: 1 the owner's sessions (a sorted set by creation time)
// ARGV: 1 the maximum (0: none), 2 the creation time (unix ms), 3 the session id
// Returns 1 when indexed, 0 when the owner is at the maximum.
var indexSessionScript = redis.NewScript(`
local max = tonumber(ARGV[1])
if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1
`)

// deleteSessionScript deletes a session with its log, history, runs and conversations, if the caller
// owns it. Run and conversation keys are found through the session's sets; they carry the session's
// hash tag, so they live in the same cluster slot as the declared keys.
//
// KEYS: 1 session, 2 seq, 3 events, 4 messages, 5 active run id, 6 run set, 7 last run id,
// 8 conversation set
// ARGV: 1 owner, 2 run key prefix ("agentd:session:{id}:run:")
// Returns 1, or 0 when the session does not exist or belongs to someone else.
var deleteSessionScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
for _, rid in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  local k = ARGV[2] .. rid
  redis.call('DEL', k, k .. ':lease', k .. ':tools', k .. ':inbox')
end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[8])) do
  redis.call('DEL', k)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
return 1
`)

// releaseLeaseScript gives a run's lease up (compare-and-delete), so another replica may take the run
// over as soon as it claims the queue entry, without waiting for the lease to expire.
//
// KEYS: 1 lease
// ARGV: 1 token
// Returns 1 when released, 0 when the lease was not ours.
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)
