/**
 * The Lua scripts that make each step of a request's life in Redis atomic. Every write
 * that a stale host could make (a checkpoint, a result) checks the request's fence: a
 * counter bumped at each claim, so only the current claim holder is obeyed.
 *
 * Layout of a request hash `r:ID`: h handler, p payload (JSON), k idempotency key, pr
 * priority, dl deadline (epoch ms), to accepting host, s band, e stream entry id, att
 * attempts (claims), f fence, own claim holder, ck checkpoint (JSON), done "1" once
 * answered, res the reply (JSON).
 *
 * Scripts touch request keys they build from the prefix: all share the `{cluster}` hash
 * tag, so they live in the caller's slot on a Redis Cluster.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

export interface Script {
  readonly lua: string;
  readonly sha: string;
}

export function script(lua: string): Script {
  return { lua, sha: createHash("sha1").update(lua).digest("hex") };
}

/** Runs a script by its SHA, loading it on NOSCRIPT (a restarted or failed-over Redis). */
export async function runScript(redis: Redis, s: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
    return await redis.eval(s.lua, keys.length, ...keys, ...args);
  }
}

/**
 * Shared by pull and takeover: a claimed entry whose request is gone or answered is
 * acknowledged and deleted; otherwise the claim bumps the fence and the attempt count and
 * records the holder, in the same script as the claim, so fence and owner never disagree.
 */
const TAKE = `
local function take(stream, band, entry, host, prefix, out)
  local id = entry[1]
  local fields = entry[2]
  local rid = fields and fields[2]
  local rkey = rid and (prefix .. 'r:' .. rid)
  if not rid or redis.call('EXISTS', rkey) == 0 or redis.call('HGET', rkey, 'done') then
    redis.call('XACK', stream, 'hosts', id)
    redis.call('XDEL', stream, id)
    return
  end
  local prev = redis.call('HGET', rkey, 'own')
  local f = redis.call('HINCRBY', rkey, 'f', 1)
  local att = redis.call('HINCRBY', rkey, 'att', 1)
  redis.call('HSET', rkey, 'own', host)
  local v = redis.call('HMGET', rkey, 'h', 'p', 'ck', 'dl', 'pr', 'to', 'k')
  out[#out + 1] = {rid, band, id, tostring(f), tostring(att), v[1], v[2], v[3], v[4], v[5], v[6], v[7], prev}
end
local bands = {'hi', 'mid', 'lo'}
`;

/**
 * KEYS: request, queue stream, idempotency key (or the request key again).
 * ARGV: rid, band, maxLen, host, handler, payload, deadline, priority, key, expireMs, prefix.
 * Returns {'queued', rid} | {'full'} | {'conflict', rid} | {'replay', rid, reply} | {'join', rid}.
 */
export const ENQUEUE = script(`
local rid, band, maxLen, host, h, p, dl, pr, k, ttl, prefix = unpack(ARGV)
if redis.call('EXISTS', KEYS[1]) == 1 then return {'queued', rid} end
if k ~= '' then
  local other = redis.call('GET', KEYS[3])
  if other then
    local v = redis.call('HMGET', prefix .. 'r:' .. other, 'h', 'p', 'done', 'res')
    if v[1] then
      if v[1] ~= h or v[2] ~= p then return {'conflict', other} end
      if v[3] then return {'replay', other, v[4]} end
      local w = prefix .. 'w:' .. other
      redis.call('SADD', w, host)
      redis.call('PEXPIRE', w, ttl)
      return {'join', other}
    end
  end
end
if redis.call('XLEN', KEYS[2]) >= tonumber(maxLen) then return {'full'} end
redis.call('HSET', KEYS[1], 'h', h, 'p', p, 'dl', dl, 'pr', pr, 'k', k, 'to', host, 's', band, 'f', 0, 'att', 0)
local id = redis.call('XADD', KEYS[2], '*', 'r', rid)
redis.call('HSET', KEYS[1], 'e', id)
redis.call('PEXPIRE', KEYS[1], ttl)
if k ~= '' then redis.call('SET', KEYS[3], rid, 'PX', ttl) end
redis.call('PUBLISH', prefix .. 'work', band)
return {'queued', rid}
`);

/** KEYS: the queues, highest band first. ARGV: host, count, prefix. Returns claimed requests. */
export const PULL = script(`${TAKE}
local host, n, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 1, #KEYS do
  local want = n - #out
  if want <= 0 then break end
  local r = redis.call('XREADGROUP', 'GROUP', 'hosts', host, 'COUNT', want, 'STREAMS', KEYS[i], '>')
  if r then for _, e in ipairs(r[1][2]) do take(KEYS[i], bands[i], e, host, prefix, out) end end
end
return out
`);

/** XAUTOCLAIM calls per band in one TAKEOVER: each looks at ≤ COUNT × 10 pending entries. */
export const TAKEOVER_SCANS = 32;

/**
 * KEYS: the queues. ARGV: host, count, minIdleMs, prefix, then each band's cursor.
 * XAUTOCLAIM hands each idle entry to one caller only (it resets the idle time as it
 * claims), so a dead host's entry gets one taker. Returns { cursors, claimed requests
 * (like PULL) }.
 *
 * One XAUTOCLAIM call looks at no more than COUNT × 10 pending entries and returns the
 * cursor to go on from (https://redis.io/commands/xautoclaim/). Called once from the
 * start, a host with one free slot saw only the 10 oldest entries, the live hosts' long
 * jobs, and never reached a dead host's entries behind them. Following the cursor to the
 * end in one script would block Redis for as long as the pending list is (100k requests
 * in flight: ~10k calls per heartbeat of every idle host); so each band's walk goes on
 * for at most TAKEOVER_SCANS calls and resumes from its cursor at the next heartbeat.
 */
export const TAKEOVER = script(`${TAKE}
local host, n, idle, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local out = {}
local cursors = {}
for i = 1, #KEYS do
  local cursor = ARGV[4 + i] or '0-0'
  local scans = 0
  repeat
    local want = n - #out
    if want <= 0 then break end
    local r = redis.call('XAUTOCLAIM', KEYS[i], 'hosts', host, idle, cursor, 'COUNT', want)
    for _, e in ipairs(r[2]) do take(KEYS[i], bands[i], e, host, prefix, out) end
    cursor = r[1]
    scans = scans + 1
  until cursor == '0-0' or scans >= ${TAKEOVER_SCANS}
  cursors[i] = cursor
end
return {cursors, out}
`);

/**
 * KEYS: hosts zset, this host's info key. ARGV: host, nowMs, infoTtlMs, infoJson, prefix,
 * then (band, entryId, rid, fence) per attempt the host runs. Refreshes the idle time of
 * exactly the entries the host still holds (fence, owner and pending-list consumer all
 * its own) and returns the request ids it has lost (taken over, answered, cancelled). A
 * plain "XCLAIM ... 0" here would steal back an entry another host took over.
 */
export const HEARTBEAT = script(`
local host, now, ttl, info, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('ZADD', KEYS[1], now, host)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(now) - 86400000)
redis.call('SET', KEYS[2], info, 'PX', ttl)
local lost = {}
for i = 6, #ARGV, 4 do
  local stream = prefix .. 'q:' .. ARGV[i]
  local id, rid, fence = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local v = redis.call('HMGET', prefix .. 'r:' .. rid, 'own', 'f', 'done')
  local p = redis.call('XPENDING', stream, 'hosts', id, id, 1)
  if v[1] == host and v[2] == fence and not v[3] and p[1] and p[1][2] == host then
    redis.call('XCLAIM', stream, 'hosts', host, 0, id, 'JUSTID')
  else
    lost[#lost + 1] = rid
  end
end
return lost
`);

/**
 * KEYS: request, its queue stream. ARGV: fence, host, entryId, idleMs, prefix, band. A
 * host lets go of a request none of its nodes can run (a handler that needs a process
 * node), while another host can: the claim's attempt is given back (it ran nowhere), the
 * holder is cleared (so the next taker logs no takeover), the entry's idle time is set
 * to idleMs (the host timeout), so any host's next heartbeat may take it over, and a
 * notice `let-go BAND ENTRY` on the work channel lets a host with a process node claim it
 * as soon as it has room (CLAIM_LET_GO). 1 when let go, 0 when this host no longer held
 * it (fenced, answered, gone).
 */
export const LET_GO = script(`
local fence, host, entry, idle, prefix, band = unpack(ARGV)
local v = redis.call('HMGET', KEYS[1], 'f', 'own', 'done')
if v[1] ~= fence or v[2] ~= host or v[3] then return 0 end
redis.call('HINCRBY', KEYS[1], 'att', -1)
redis.call('HSET', KEYS[1], 'own', '')
redis.call('XCLAIM', KEYS[2], 'hosts', host, 0, entry, 'IDLE', idle, 'JUSTID')
redis.call('PUBLISH', prefix .. 'work', 'let-go ' .. band .. ' ' .. entry)
return 1
`);

/**
 * KEYS: the queue stream of the entry. ARGV: host, entryId, minIdleMs, prefix, band.
 * Claims one entry another host let go of (LET_GO), if it is still idle that long (no one
 * claimed it since: XCLAIM resets the idle time, so one host gets it). Returns the claimed
 * requests, like PULL: none, or one.
 */
export const CLAIM_LET_GO = script(`${TAKE}
local host, entry, idle, prefix, band = unpack(ARGV)
local out = {}
local r = redis.call('XCLAIM', KEYS[1], 'hosts', host, idle, entry)
if r[1] then take(KEYS[1], band, r[1], host, prefix, out) end
return out
`);

/** KEYS: request. ARGV: fence, state. 1 when stored, 0 when refused (fenced, answered, gone). */
export const CHECKPOINT = script(`
local v = redis.call('HMGET', KEYS[1], 'f', 'done')
if v[1] ~= ARGV[1] or v[2] then return 0 end
redis.call('HSET', KEYS[1], 'ck', ARGV[2])
return 1
`);

/**
 * KEYS: request. ARGV: fence ('' = the accepting host, for cancels and deadlines), reply
 * JSON, keepMs, replyCap, prefix, finishing host, rid. Answers once: stores the reply,
 * acknowledges and deletes the queue entry, sends the reply to the accepting host and to
 * every host that joined with the same key, tells the claim holder to abort if another
 * host finished it, and lets the request expire after keepMs. 1 = answered, 0 = refused.
 * A reply stream expires a day after its last reply, as the hosts zset forgets a host: a
 * live host deletes what it reads, and no one reads a dead host's (its id, hostname-pid
 * by default, is new at every start), which stayed in Redis for good.
 */
export const FINISH = script(`
local fence, reply, keep, cap, prefix, me, rid = unpack(ARGV)
local v = redis.call('HMGET', KEYS[1], 'f', 'done', 's', 'e', 'to', 'own')
if not v[1] then return -1 end
if v[2] then return 0 end
if fence ~= '' and v[1] ~= fence then return -2 end
redis.call('HSET', KEYS[1], 'done', '1', 'res', reply)
redis.call('HDEL', KEYS[1], 'ck')
if v[4] then
  local s = prefix .. 'q:' .. v[3]
  redis.call('XACK', s, 'hosts', v[4])
  redis.call('XDEL', s, v[4])
end
local w = prefix .. 'w:' .. rid
local to = redis.call('SMEMBERS', w)
to[#to + 1] = v[5]
local sent = {}
for _, h in ipairs(to) do
  if not sent[h] then
    sent[h] = true
    redis.call('XADD', prefix .. 'rp:' .. h, 'MAXLEN', '~', cap, '*', 'r', rid, 'v', reply)
    redis.call('PEXPIRE', prefix .. 'rp:' .. h, 86400000)
  end
end
redis.call('DEL', w)
redis.call('PEXPIRE', KEYS[1], keep)
if v[6] and v[6] ~= me then redis.call('PUBLISH', prefix .. 'ctl:' .. v[6], rid) end
return 1
`);
