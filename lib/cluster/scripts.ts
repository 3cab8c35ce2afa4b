/**
 * The Lua scripts of the cluster session store (docs/design/cluster.md §3), one atomic step
 * each. Loaded with ioredis `defineCommand`: a script goes as EVAL the first time on a
 * connection and as EVALSHA after, and ioredis resends it after a NOSCRIPT (a restarted Redis),
 * which is safe because a NOSCRIPT means nothing ran.
 *
 * Conventions:
 * - Every script returns an array whose first element is a status: `OK`, `DUP` (push),
 *   `UNKNOWN` (no such session, or not this one any more), `FENCED` (+ owner, gen).
 * - A script that needs the cluster epoch answers the error `NOEPOCH` while it is unset (Redis
 *   lost everything, or nobody ran `boot` yet); the caller runs `boot` and calls again.
 * - The fenced scripts (ack, detach, end with a fence, range) check the fence before they
 *   write anything, so a member holding a stale generation changes nothing.
 * - Key names found only while running (the player behind a sessionId, the `x:` of a replaced
 *   session) are built from the prefix passed in ARGV and the tags of keys.ts. That is legal on
 *   standalone Redis, Sentinel and Valkey, and one reason Redis Cluster is out of scope (§8).
 * - Lua numbers are doubles: seqs and generations are exact far past any u32 frame seq.
 */
import type { Redis } from 'ioredis';
import { EVENTS_STREAM_MAX, KEY_TAGS } from './keys.js';

/** Helpers every session script starts with. */
const PRELUDE = `
local function num(v) return tonumber(v) or 0 end

-- Redis may have lost writes since this session was last written when its epoch is not the
-- cluster's (a restart or failover changed run_id). Burn one seq: drop what is kept and skip a
-- seq, so a resume from any lastSeq up to the old seq reports gap, and no new push reuses a seq
-- a client may hold. xs = 1 lets the next resume catch a client holding more than Redis kept.
local function cross(s, q, epoch)
  if redis.call('HGET', s, 'ep') == epoch then return end
  local burn = num(redis.call('HGET', s, 'seq')) + 1
  redis.call('DEL', q)
  redis.call('HSET', s, 'seq', burn, 'fgt', burn, 'b', 0, 'ep', epoch, 'xs', 1)
end

-- Forgets the kept pushes up to upTo (at most seq). The list holds exactly fgt+1 .. seq, so
-- they are its first upTo - fgt elements, and their body bytes (element minus the 2-byte route)
-- leave b. Returns the new fgt.
local function trimTo(s, q, upTo)
  local fgt = num(redis.call('HGET', s, 'fgt'))
  local n = upTo - fgt
  if n <= 0 then return fgt end
  local bytes = 0
  for _, e in ipairs(redis.call('LRANGE', q, 0, n - 1)) do bytes = bytes + #e - 2 end
  redis.call('LTRIM', q, n, -1)
  -- Not HINCRBY by -bytes: with bytes = 0 that is Lua's -0, which Redis refuses as "-0".
  if bytes > 0 then redis.call('HINCRBY', s, 'b', 0 - bytes) end
  redis.call('HSET', s, 'fgt', upTo)
  return upTo
end

-- The fence: session sid, owned by member me, at generation gen. nil when it holds; else the
-- reply for a caller that lost the session (UNKNOWN: ended, or replaced by a new login) or lost
-- its ownership (FENCED, with the owner, '' while detached, and generation now).
local function fence(s, sid, me, gen)
  local m = redis.call('HMGET', s, 'sid', 'own', 'gen')
  if m[1] ~= sid then return {'UNKNOWN'} end
  if m[2] ~= me or num(m[3]) ~= tonumber(gen) then return {'FENCED', m[2], num(m[3])} end
  return nil
end

local NOEPOCH = 'NOEPOCH cluster epoch not set: run boot'

-- Redis's clock in ms: the one clock every member shares (idle times, beats).
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The set of players whose link a member holds (o:<member>): what a reaper takes over when it dies.
local function hold(prefix, member, pid, add)
  if not member or member == '' then return end
  if add then redis.call('SADD', prefix .. '${KEY_TAGS.held}' .. member, pid)
  else redis.call('SREM', prefix .. '${KEY_TAGS.held}' .. member, pid) end
end

-- The idle index (P idle): player → time of the last REQUEST (or login/resume), and the list of
-- every session the idle sweep walks.
local function active(prefix, pid)
  redis.call('ZADD', prefix .. '${KEY_TAGS.idle}', nowMs(), pid)
end

-- The gateId of a member id (<gateId>~<hex>).
local function gateOf(member)
  if not member or member == '' then return '' end
  return string.match(member, '^(.*)~[^~]*$') or member
end

-- A backend event, written by the script that makes the change, so that no crash between the
-- change and the event can lose it, and the stream's order is the order of the changes. One
-- lease-holding member posts the stream to the backend (lib/cluster/eventStream.ts).
local function event(prefix, t, pid, sid, member, reason)
  redis.call('XADD', prefix .. '${KEY_TAGS.events}', 'MAXLEN', ${EVENTS_STREAM_MAX}, '*',
    't', t, 'p', pid, 's', sid, 'g', gateOf(member), 'r', reason or '', 'a', nowMs())
end

-- Tells a member about one of its sessions on its notice channel (prefix n:<member>); a member
-- that no longer holds the session ignores it. Returns how many subscribers got it.
local function notify(prefix, member, msg)
  if not member or member == '' then return 0 end
  return redis.call('PUBLISH', prefix .. '${KEY_TAGS.notices}' .. member, msg)
end

-- How every fenced script starts (KEYS s, q, epoch; ARGV sid, me, gen): the cluster epoch must
-- be set, the fence must hold, then the epoch burn. Returns the reply to stop with, or nil.
local function enter(s, q, epochKey, sid, me, gen)
  local epoch = redis.call('GET', epochKey)
  if not epoch then return redis.error_reply(NOEPOCH) end
  local f = fence(s, sid, me, gen)
  if f then return f end
  cross(s, q, epoch)
  return nil
end
`;

/**
 * The steps of one push (KEYS of the session computed or given): no session, UNKNOWN; a push id
 * seen, DUP with its seq; else numbered, appended, the oldest dropped past the bounds. Returns
 * the reply {status, seq, owner, state, dropped, notified (0 until published)}, and for an online
 * session the notice for its owner and the owner.
 */
const PUSH_ONE = `
local function pushOne(s, q, i, epoch, el, id, max, maxBytes, idsMax, inlineMax)
  if redis.call('EXISTS', s) == 0 then return {'UNKNOWN'} end
  cross(s, q, epoch)
  local m = redis.call('HMGET', s, 'own', 'st', 'sid')
  if id ~= '' then
    local seen = redis.call('ZSCORE', i, id)
    if seen then return {'DUP', tonumber(seen), m[1], m[2], 0, 0} end
  end
  local seq = redis.call('HINCRBY', s, 'seq', 1)
  local n = redis.call('RPUSH', q, el)
  local b = redis.call('HINCRBY', s, 'b', #el - 2)
  local dropped = 0
  while n > max or (maxBytes >= 0 and b > maxBytes and n > 1) do
    b = b - (#redis.call('LPOP', q) - 2)
    n = n - 1
    dropped = dropped + 1
  end
  if dropped > 0 then
    redis.call('HSET', s, 'b', b)
    redis.call('HINCRBY', s, 'fgt', dropped)
  end
  if id ~= '' then
    redis.call('ZADD', i, seq, id)
    -- Scores are seqs, so rank order is push order: keep the newest pushIdsMax ids.
    redis.call('ZREMRANGEBYRANK', i, 0, -(idsMax + 1))
  end
  local r = {'OK', seq, m[1], m[2], dropped, 0}
  if m[2] ~= 'online' then return r end
  local inline = #el <= inlineMax and el or ''
  return r, 'P ' .. m[3] .. ' ' .. seq .. '\\n' .. inline, m[1]
end
`;

/** reqBegin's and reqFinish's steps, for one request (keys given or computed). */
const REQ_ONE = `
-- Drops the window's oldest seq: its answer's bytes leave wb, and a running record's count
-- leaves its member's r: hash.
local function evictOldest(s, w, wl, prefix, pid)
  local old = redis.call('LPOP', wl)
  local orec = redis.call('HGET', w, old)
  redis.call('HDEL', w, old)
  if not orec then return end
  local k = string.sub(orec, 1, 1)
  if k == 'D' then
    local wb = num(redis.call('HGET', s, 'wb')) - #orec
    redis.call('HSET', s, 'wb', wb > 0 and wb or 0)
  elseif k == 'R' then
    local who = string.match(orec, ':(.*)$')
    if redis.call('HINCRBY', prefix .. '${KEY_TAGS.running}' .. who, pid, -1) <= 0 then redis.call('HDEL', prefix .. '${KEY_TAGS.running}' .. who, pid) end
  end
end

local function reqBeginOne(s, q, epochKey, w, wl, sid, me, gen, seq, size, prefix, pid)
  local stop = enter(s, q, epochKey, sid, me, gen)
  if stop then
    if stop[1] == 'UNKNOWN' then return {'GONE'} end
    return stop
  end
  local mark = 'R' .. gen .. ':' .. me
  local rec = redis.call('HGET', w, seq)
  if rec then
    local k = string.sub(rec, 1, 1)
    if k == 'R' then return {'RUNNING'} end
    if k == 'D' then return {'DONE', rec} end
    if k == 'U' then return {'UNKNOWN'} end
    redis.call('HSET', w, seq, mark)
    redis.call('HINCRBY', prefix .. '${KEY_TAGS.running}' .. me, pid, 1)
    return {'NEW'}
  end
  if tonumber(seq) <= num(redis.call('HGET', s, 'rq')) then return {'STALE'} end
  redis.call('HSET', s, 'rq', seq)
  redis.call('HSET', w, seq, mark)
  redis.call('HINCRBY', prefix .. '${KEY_TAGS.running}' .. me, pid, 1)
  local n = redis.call('RPUSH', wl, seq)
  while n > size do
    evictOldest(s, w, wl, prefix, pid)
    n = n - 1
  end
  return {'NEW'}
end

local function reqFinishOne(s, w, sid, me, gen, seq, record, prefix, pid, inlineMax, maxBytes)
  local runningKey = prefix .. '${KEY_TAGS.running}' .. me
  if redis.call('HINCRBY', runningKey, pid, -1) <= 0 then redis.call('HDEL', runningKey, pid) end
  if redis.call('HGET', w, seq) ~= 'R' .. gen .. ':' .. me then return {'LOST'} end
  redis.call('HSET', w, seq, record)
  if record ~= 'N' then
    -- --request-window-bytes: the oldest seqs leave early while the answers kept are over it.
    local wb = redis.call('HINCRBY', s, 'wb', #record)
    if maxBytes >= 0 then
      local wl = prefix .. '${KEY_TAGS.windowOrder}' .. pid
      while wb > maxBytes and redis.call('LLEN', wl) > 1 do
        evictOldest(s, w, wl, prefix, pid)
        wb = num(redis.call('HGET', s, 'wb'))
      end
    end
  end
  local m = redis.call('HMGET', s, 'sid', 'own', 'gen')
  if record ~= 'N' and m[1] == sid and m[2] and m[2] ~= '' and (m[2] ~= me or m[3] ~= gen) then
    local inline = #record <= inlineMax and record or ''
    notify(prefix, m[2], 'A ' .. sid .. ' ' .. seq .. '\\n' .. inline)
  end
  return {'OK'}
end
`;

/**
 * boot. KEYS: epoch, runid. ARGV: Redis run_id (INFO server), a fresh epoch.
 * Starts a new cluster epoch when Redis is not the one the epoch belongs to (restart, failover,
 * or never booted). Compare-and-set, so members booting together agree on one epoch.
 * Returns {epoch, changed}.
 */
const BOOT = `
local epoch = redis.call('GET', KEYS[1])
if epoch and redis.call('GET', KEYS[2]) == ARGV[1] then return {epoch, 0} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
return {ARGV[2], 1}
`;

/**
 * login. KEYS: s, q, i, x:<new sid>, epoch. ARGV: pid, sid, tokHash, me, prefix, tombstoneMs.
 * A new session for the player, owned by me. Replaces the player's previous session, if any:
 * its x: becomes the tombstone ~replaced, its holder gets the notice `E <sid> replaced`, and its pushes and push ids go (a new session starts
 * at seq 0, as on a single node). gen = the old gen + 1.
 * Returns {'OK', gen, old sid, old owner, old gen} ('' and 0 when there was none).
 */
const LOGIN = `${PRELUDE}
local epoch = redis.call('GET', KEYS[5])
if not epoch then return redis.error_reply(NOEPOCH) end
local old = redis.call('HMGET', KEYS[1], 'sid', 'own', 'gen', 'lo')
if old[1] then
  redis.call('SET', ARGV[5] .. '${KEY_TAGS.sessionId}' .. old[1], '~replaced', 'PX', ARGV[6])
  -- Its link (or, detached, the member that may still hold it) ends it: BYE replaced.
  notify(ARGV[5], old[2] ~= '' and old[2] or old[4], 'E ' .. old[1] .. ' replaced')
  event(ARGV[5], 'offline', ARGV[1], old[1], ARGV[4], 'replaced')
end
local gen = num(old[3]) + 1
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], ARGV[5] .. '${KEY_TAGS.window}' .. ARGV[1], ARGV[5] .. '${KEY_TAGS.windowOrder}' .. ARGV[1])
redis.call('HSET', KEYS[1], 'sid', ARGV[2], 'tok', ARGV[3], 'own', ARGV[4], 'gen', gen, 'st', 'online',
  'seq', 0, 'fgt', 0, 'ack', 0, 'b', 0, 'ep', epoch, 'xs', 0)
redis.call('SET', KEYS[4], ARGV[1])
hold(ARGV[5], old[2], ARGV[1], false)
hold(ARGV[5], ARGV[4], ARGV[1], true)
active(ARGV[5], ARGV[1])
event(ARGV[5], 'online', ARGV[1], ARGV[2], ARGV[4], '')
return {'OK', gen, old[1] or '', old[2] or '', num(old[3])}
`;

/**
 * resume. KEYS: x:<sid>, epoch. ARGV: prefix, sid, tokHash, lastSeq, me, pageLimit.
 * Checks the token hash, then moves ownership to me with gen + 1, whoever held it (the old link
 * may be half-open: the resume wins). The gap rule is PushBuffer's: upTo = min(lastSeq, seq),
 * gap = fgt > upTo; the pushes up to upTo are trimmed as by an ACK. The previous holder gets the
 * notice \`M <sid> <gen>\`.
 * Returns {'UNKNOWN', reason} ('' for no such session or a wrong token, which learns nothing)
 * or {'OK', pid, gen, gap, seq, fgt, upTo, prev owner, prev gen, prev state, first page of the
 * kept pushes after upTo}; element k of the page has seq fgt + 1 + k.
 */
const RESUME = `${PRELUDE}
local epoch = redis.call('GET', KEYS[2])
if not epoch then return redis.error_reply(NOEPOCH) end
local pid = redis.call('GET', KEYS[1])
if not pid then return {'UNKNOWN', ''} end
if string.sub(pid, 1, 1) == '~' then return {'UNKNOWN', string.sub(pid, 2)} end
local s = ARGV[1] .. '${KEY_TAGS.meta}' .. pid
local q = ARGV[1] .. '${KEY_TAGS.pushes}' .. pid
local m = redis.call('HMGET', s, 'sid', 'tok', 'own', 'gen', 'st', 'lo')
if m[1] ~= ARGV[2] or m[2] ~= ARGV[3] then return {'UNKNOWN', ''} end
cross(s, q, epoch)
local lastSeq = tonumber(ARGV[4])
local seq = num(redis.call('HGET', s, 'seq'))
local fgt = num(redis.call('HGET', s, 'fgt'))
if redis.call('HGET', s, 'xs') == '1' and lastSeq >= fgt then
  -- Crossed an epoch, and the client holds the burned seq or more: those are pushes Redis may
  -- have lost, so nothing here can be trusted to follow them. Burn past them as well.
  local burn = math.max(seq, lastSeq) + 1
  redis.call('DEL', q)
  redis.call('HSET', s, 'seq', burn, 'fgt', burn, 'b', 0)
  seq, fgt = burn, burn
end
local upTo = math.min(lastSeq, seq)
local gap = fgt > upTo
trimTo(s, q, upTo)
if upTo > num(redis.call('HGET', s, 'ack')) then redis.call('HSET', s, 'ack', upTo) end
local gen = num(m[4]) + 1
redis.call('HSET', s, 'own', ARGV[5], 'gen', gen, 'st', 'online', 'xs', 0, 'lo', '')
hold(ARGV[1], m[3], pid, false)
hold(ARGV[1], ARGV[5], pid, true)
active(ARGV[1], pid)
event(ARGV[1], 'resumed', pid, ARGV[2], ARGV[5], '')
-- The previous holder (its link may be half-open, or it kept the detached session's idle clock)
-- lets go: the notice \`M <sid> <gen>\` says a newer generation holds it now.
notify(ARGV[1], m[3] ~= '' and m[3] or m[6], 'M ' .. ARGV[2] .. ' ' .. gen)
local limit = tonumber(ARGV[6])
local page = redis.call('LRANGE', q, 0, limit - 1)
fgt = num(redis.call('HGET', s, 'fgt'))
return {'OK', pid, gen, gap and 1 or 0, seq, fgt, upTo, m[3] or '', num(m[4]), m[5] or '', page}
`;

/**
 * pushMany. KEYS: epoch. ARGV: prefix, bufferMax, bufferMaxBytes (-1 = no byte bound),
 * pushIdsMax, inlineMax, and the pushes packed in one string, per push: u16 length ‖ playerId,
 * u16 length ‖ push id (empty = none), u32 length ‖ element (u16 route ‖ body). One argument
 * instead of three per push: the gate's client builds one buffer, not 3,000 arguments.
 * Every push, one or a batch of them (a broadcast page), in order, in one atomic call. Not fenced:
 * any member may push to any session. A push id seen among the player's last pushIdsMax ids
 * answers that push's seq as a duplicate and stores nothing. Otherwise seq + 1, append, then drop
 * the oldest while over the count bound or over the byte bound (always keeping the newest), fgt
 * following. Each online session's owner gets one notice for the call: `B\n` then, per push, a
 * u32 length and `P <sid> <seq>\n` ‖ element (the element only when at most inlineMax bytes;
 * else it reads it with range), in seq order: one Redis, one channel.
 * Returns one flat array (integers parse without a string each): six per push, {status (0
 * UNKNOWN, 1 OK, 2 DUP), seq, owner index, online, dropped, notified}, then the owners' names.
 */
const PUSH_MANY = `${PRELUDE}${PUSH_ONE}
local epoch = redis.call('GET', KEYS[1])
if not epoch then return redis.error_reply(NOEPOCH) end
local prefix = ARGV[1]
local max, maxBytes, idsMax, inlineMax = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local blob = ARGV[6]
local out, byOwner, order, owners, ownerAt = {}, {}, {}, {}, {}
local pos, k = 1, 0
while pos <= #blob do
  local pl, il, ell
  pl, pos = struct.unpack('>I2', blob, pos)
  local pid = string.sub(blob, pos, pos + pl - 1)
  pos = pos + pl
  il, pos = struct.unpack('>I2', blob, pos)
  local id = string.sub(blob, pos, pos + il - 1)
  pos = pos + il
  ell, pos = struct.unpack('>I4', blob, pos)
  local el = string.sub(blob, pos, pos + ell - 1)
  pos = pos + ell
  local r, notice, owner = pushOne(prefix .. '${KEY_TAGS.meta}' .. pid, prefix .. '${KEY_TAGS.pushes}' .. pid, prefix .. '${KEY_TAGS.pushIds}' .. pid,
    epoch, el, id, max, maxBytes, idsMax, inlineMax)
  -- Six integers per push: status (0 UNKNOWN, 1 OK, 2 DUP), seq, owner (1-based index into the
  -- names after the last push; 0 none), online (1/0), dropped, notified.
  if r[1] == 'UNKNOWN' then
    out[k + 1], out[k + 2], out[k + 3], out[k + 4], out[k + 5], out[k + 6] = 0, 0, 0, 0, 0, 0
  else
    local o = 0
    if r[3] and r[3] ~= '' then
      o = ownerAt[r[3]]
      if not o then owners[#owners + 1] = r[3]; o = #owners; ownerAt[r[3]] = o end
    end
    out[k + 1], out[k + 2], out[k + 3], out[k + 4], out[k + 5], out[k + 6] = r[1] == 'OK' and 1 or 2, r[2], o, r[4] == 'online' and 1 or 0, r[5], 0
  end
  if notice then
    if not byOwner[owner] then byOwner[owner] = {}; order[#order + 1] = owner end
    local list = byOwner[owner]
    list[#list + 1] = {k + 6, notice}
  end
  k = k + 6
end
for _, owner in ipairs(order) do
  local parts = {'B\\n'}
  for _, e in ipairs(byOwner[owner]) do parts[#parts + 1] = struct.pack('>I4', #e[2]) .. e[2] end
  local n = notify(prefix, owner, table.concat(parts))
  for _, e in ipairs(byOwner[owner]) do out[e[1]] = n end
end
for _, name in ipairs(owners) do out[#out + 1] = name end
return out
`;

/**
 * One ACK, fenced: the client holds everything up to seq (taken as at most the newest push):
 * forget it. Returns {'OK', fgt}, {'FENCED', owner, gen} or {'UNKNOWN'}.
 */
const ACK_ONE = `
local function ackOne(s, q, epochKey, sid, me, gen, seq)
  local stop = enter(s, q, epochKey, sid, me, gen)
  if stop then return stop end
  local a = math.min(tonumber(seq), num(redis.call('HGET', s, 'seq')))
  local fgt = trimTo(s, q, a)
  if a > num(redis.call('HGET', s, 'ack')) then redis.call('HSET', s, 'ack', a) end
  return {'OK', fgt}
end
`;

/**
 * ackMany. KEYS: epoch. ARGV: prefix, me, then per ACK: pid, sid, gen, seq.
 * ackOne for each (the ACKs of one event-loop turn, any sessions, or just one). Returns one reply per ACK.
 */
const ACK_MANY = `${PRELUDE}${ACK_ONE}
if not redis.call('GET', KEYS[1]) then return redis.error_reply(NOEPOCH) end
local prefix, me = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 4 do
  local pid = ARGV[i]
  out[#out + 1] = ackOne(prefix .. '${KEY_TAGS.meta}' .. pid, prefix .. '${KEY_TAGS.pushes}' .. pid, KEYS[1], ARGV[i + 1], me, ARGV[i + 2], ARGV[i + 3])
end
return out
`;

/**
 * detach. KEYS: s, q, epoch. ARGV: sid, me, gen, prefix, pid, reason (of the `detached` event).
 * Fenced. The owner's link went away: no owner, state detached; pushes keep being stored. The
 * member it was detached from stays its last holder (lo): it may end it (idle, shutdown) while no
 * resume moved it, and a resume tells it to let go.
 * Returns {'OK'}, {'FENCED', owner, gen} or {'UNKNOWN'}.
 */
const DETACH = `${PRELUDE}
local stop = enter(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
if stop then return stop end
redis.call('HSET', KEYS[1], 'own', '', 'st', 'detached', 'lo', ARGV[2])
hold(ARGV[4], ARGV[2], ARGV[5], false)
event(ARGV[4], 'detached', ARGV[5], ARGV[1], ARGV[2], ARGV[6])
return {'OK'}
`;

/**
 * end. KEYS: s, q, i. ARGV: prefix, sid ('' = whichever session the player has: kick, idle),
 * me, gen, reason, tombstoneMs, message (one line, for the BYE; may be ''), pid.
 * Fenced when sid is given (the owner ends its own session: logout, idle; or the member it was
 * detached from, at the same generation). Deletes the session's keys, leaves x:<sid> as the
 * tombstone ~reason, so a late resume learns why, and tells its holder \`E <sid> <reason>\`.
 * Returns {'OK', sid, owner}, {'FENCED', owner, gen} or {'UNKNOWN'}.
 */
const END = `${PRELUDE}
local m = redis.call('HMGET', KEYS[1], 'sid', 'own', 'gen', 'lo')
if not m[1] then return {'UNKNOWN'} end
if ARGV[2] ~= '' then
  if m[1] ~= ARGV[2] then return {'UNKNOWN'} end
  local holder = m[2] ~= '' and m[2] or m[4]
  if holder ~= ARGV[3] or num(m[3]) ~= tonumber(ARGV[4]) then return {'FENCED', m[2], num(m[3])} end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], ARGV[1] .. '${KEY_TAGS.window}' .. ARGV[8], ARGV[1] .. '${KEY_TAGS.windowOrder}' .. ARGV[8])
redis.call('SET', ARGV[1] .. '${KEY_TAGS.sessionId}' .. m[1], '~' .. ARGV[5], 'PX', ARGV[6])
hold(ARGV[1], m[2], ARGV[8], false)
redis.call('ZREM', ARGV[1] .. '${KEY_TAGS.idle}', ARGV[8])
notify(ARGV[1], m[2] ~= '' and m[2] or m[4], 'E ' .. m[1] .. ' ' .. ARGV[5] .. ' ' .. (ARGV[7] or ''))
event(ARGV[1], 'offline', ARGV[8], m[1], ARGV[3], ARGV[5])
return {'OK', m[1], m[2]}
`;

/**
 * range. KEYS: s, q, epoch. ARGV: sid, me, gen, after, limit.
 * Fenced read of up to limit kept pushes after seq `after` (replay pages, hole filling). It
 * writes only when the session crossed an epoch (the burn), so the owner never reads a list
 * that Redis may have lost part of.
 * Returns {'OK', fgt, seq, first seq, elements}, {'FENCED', owner, gen} or {'UNKNOWN'}.
 */
const RANGE = `${PRELUDE}
local stop = enter(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
if stop then return stop end
local fgt = num(redis.call('HGET', KEYS[1], 'fgt'))
local seq = num(redis.call('HGET', KEYS[1], 'seq'))
local start = math.max(tonumber(ARGV[4]) - fgt, 0)
local els = redis.call('LRANGE', KEYS[2], start, start + tonumber(ARGV[5]) - 1)
return {'OK', fgt, seq, fgt + 1 + start, els}
`;

/**
 * touch. KEYS: idle. ARGV: pids.
 * REQUESTs were seen for these players' sessions (coalesced by the holder): their idle clocks
 * restart now. XX: a session that ended meanwhile is not brought back.
 */
const TOUCH = `${PRELUDE}
local now = nowMs()
for i = 1, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now, ARGV[i]) end
return {'OK'}
`;

/**
 * sweepIdle. KEYS: idle. ARGV: prefix, idleMs, limit, tombstoneMs.
 * Ends up to limit sessions whose last REQUEST is idleMs old or more, wherever they live (a
 * dead gate's too): the same steps as end (reason idle), each one once, whichever member sweeps.
 * Returns {'OK', more (1/0), pid1, sid1, pid2, sid2, …} for the offline events.
 */
const SWEEP_IDLE = `${PRELUDE}
local prefix = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs() - tonumber(ARGV[2]), 'LIMIT', 0, tonumber(ARGV[3]))
local out = {'OK', #due == tonumber(ARGV[3]) and 1 or 0}
for _, pid in ipairs(due) do
  redis.call('ZREM', KEYS[1], pid)
  local s = prefix .. '${KEY_TAGS.meta}' .. pid
  local m = redis.call('HMGET', s, 'sid', 'own', 'lo')
  if m[1] then
    redis.call('DEL', s, prefix .. '${KEY_TAGS.pushes}' .. pid, prefix .. '${KEY_TAGS.pushIds}' .. pid,
      prefix .. '${KEY_TAGS.window}' .. pid, prefix .. '${KEY_TAGS.windowOrder}' .. pid)
    redis.call('SET', prefix .. '${KEY_TAGS.sessionId}' .. m[1], '~idle', 'PX', ARGV[4])
    hold(prefix, m[2], pid, false)
    notify(prefix, m[2] ~= '' and m[2] or m[3], 'E ' .. m[1] .. ' idle ')
    event(prefix, 'offline', pid, m[1], m[2] ~= '' and m[2] or m[3], 'idle')
    table.insert(out, pid)
    table.insert(out, m[1])
  end
end
return out
`;

/**
 * beat. KEYS: members, m:me, dead:me. ARGV: me, ttlMs, then field, value pairs (this member's figures).
 * The member is alive: its score in members is now, its figures live ttlMs. A member that was
 * declared dead (dead:me, set by the reaper that took its sessions over) gets DEAD and writes
 * nothing: it must let its links go before it beats again (rejoin).
 * Returns {'OK', now} or {'DEAD', reaper}.
 */
const BEAT = `${PRELUDE}
local reaper = redis.call('GET', KEYS[3])
if reaper then return {'DEAD', reaper} end
local now = nowMs()
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('DEL', KEYS[2])
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'OK', now}
`;

/**
 * rejoin. KEYS: dead:me. A member that was declared dead and let its links go may beat again.
 */
const REJOIN = `
redis.call('DEL', KEYS[1])
return {'OK'}
`;

/**
 * reapPage. KEYS: members, dead:x, o:x. ARGV: x, me, deadAfterMs, count, prefix.
 * Member x has not beaten for deadAfterMs: the first caller to see it declares it dead (out of
 * members, dead:x = me for an hour) and, page by page, detaches up to count of the sessions x
 * held (own = x): no owner, no last holder, pushes kept for a resume anywhere, the idle sweep
 * still ending them. Only the member that declared x dead continues its pages.
 * Returns {'ALIVE'}, {'GONE'} (another member reaps it, or nothing left), or
 * {'OK', left, pid1, sid1, …} (the sessions detached by this page, for their events).
 */
const REAP_PAGE = `${PRELUDE}
local x, me = ARGV[1], ARGV[2]
local score = redis.call('ZSCORE', KEYS[1], x)
if score then
  if tonumber(score) > nowMs() - tonumber(ARGV[3]) then return {'ALIVE'} end
  redis.call('ZREM', KEYS[1], x)
  redis.call('SET', KEYS[2], me, 'PX', 3600000)
  redis.call('PUBLISH', ARGV[5] .. '${KEY_TAGS.control}', 'dead ' .. x)
elseif redis.call('GET', KEYS[2]) ~= me then
  return {'GONE'}
end
local out = {'OK', 0}
-- Requests x was running when it died: their outcome is unknowable. Each becomes U, and the
-- session's holder is told, to answer OUTCOME_UNKNOWN to a client waiting on that seq.
local runningKey = ARGV[5] .. '${KEY_TAGS.running}' .. x
for _, pid in ipairs(redis.call('HKEYS', runningKey)) do
  local w = ARGV[5] .. '${KEY_TAGS.window}' .. pid
  local recs = redis.call('HGETALL', w)
  local m = redis.call('HMGET', ARGV[5] .. '${KEY_TAGS.meta}' .. pid, 'sid', 'own')
  for i = 1, #recs, 2 do
    local rec = recs[i + 1]
    if string.sub(rec, 1, 1) == 'R' and string.sub(rec, -(#x + 1)) == ':' .. x then
      redis.call('HSET', w, recs[i], 'U')
      if m[1] and m[2] and m[2] ~= '' then notify(ARGV[5], m[2], 'A ' .. m[1] .. ' ' .. recs[i] .. '\\nU') end
    end
  end
end
redis.call('DEL', runningKey)
for _, pid in ipairs(redis.call('SPOP', KEYS[3], tonumber(ARGV[4]))) do
  local s = ARGV[5] .. '${KEY_TAGS.meta}' .. pid
  local m = redis.call('HMGET', s, 'sid', 'own')
  if m[1] and m[2] == x then
    redis.call('HSET', s, 'own', '', 'st', 'detached', 'lo', '')
    event(ARGV[5], 'detached', pid, m[1], x, 'gate_lost')
    table.insert(out, pid)
    table.insert(out, m[1])
  end
end
out[2] = redis.call('SCARD', KEYS[3])
return out
`;

/**
 * reqBeginMany. KEYS: epoch. ARGV: prefix, me, windowSize, then per request: pid, sid, gen, seq.
 * Fenced, per request. Before a REQUEST seq runs upstream, cluster-wide: the first sight of it
 * records it as running here (R<gen>:<me>), so a client that moves and re-sends it never runs it
 * twice. The REQUESTs of one event-loop turn (any sessions) go in one call, in order.
 * Returns per request {'NEW'}, {'RUNNING'} (its answer comes as an A notice), {'DONE', record},
 * {'UNKNOWN'} (the gate running it died), {'STALE'}, {'FENCED', owner, gen}, or {'GONE'} (no
 * such session).
 */
const REQ_BEGIN_MANY = `${PRELUDE}${REQ_ONE}
if not redis.call('GET', KEYS[1]) then return redis.error_reply(NOEPOCH) end
local prefix, me, size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 4 do
  local pid = ARGV[i]
  out[#out + 1] = reqBeginOne(prefix .. '${KEY_TAGS.meta}' .. pid, prefix .. '${KEY_TAGS.pushes}' .. pid, KEYS[1],
    prefix .. '${KEY_TAGS.window}' .. pid, prefix .. '${KEY_TAGS.windowOrder}' .. pid, ARGV[i + 1], me, ARGV[i + 2], ARGV[i + 3], size, prefix, pid)
end
return out
`;

/**
 * reqFinishMany. KEYS: none. ARGV: prefix, me, inlineMax, windowBytes (-1 = none: --request-window-bytes),
 * then per outcome: pid, sid, runGen, seq, record ('D' ‖ type u8 ‖ route u16 ‖ body, or 'N':
 * refused before it ran). The outcomes of one event-loop turn, in one call.
 * Fenced on the record, not on the session: the outcome of a call that ran is a fact, stored even
 * after the session moved. If it moved (another member, or a newer generation here), its holder
 * is told `A <sid> <seq>\n` ‖ record (empty past inlineMax: it reads it by re-sending).
 * Returns per outcome {'OK'} or {'LOST'} (no such record: the session ended, or the window moved on).
 */
const REQ_FINISH_MANY = `${PRELUDE}${REQ_ONE}
local prefix, me, inlineMax, maxBytes = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 5 do
  local pid = ARGV[i]
  out[#out + 1] = reqFinishOne(prefix .. '${KEY_TAGS.meta}' .. pid, prefix .. '${KEY_TAGS.window}' .. pid, ARGV[i + 1], me, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], prefix, pid, inlineMax, maxBytes)
end
return out
`;

/**
 * evTake. KEYS: ev, ev:lease. ARGV: me, leaseMs, count.
 * The member posting the event stream to the backend holds a lease; a member that holds it (or
 * finds it free) renews it and reads the oldest count events (posted ones are deleted, so the
 * stream is exactly what is left to post). Returns {'LEASE', entries…} or {'BUSY'}.
 */
const EV_TAKE = `
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {'BUSY'} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'LEASE', redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[3]))}
`;

/**
 * evDone. KEYS: ev, ev:lease. ARGV: me, leaseMs, ids…
 * The backend took these events: they leave the stream, if this member still holds the lease
 * (else another reposts them: at-least-once, each with its stream id). Returns {'OK'} or {'LOST'}.
 */
const EV_DONE = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'LOST'} end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if #ARGV > 2 then redis.call('XDEL', KEYS[1], unpack(ARGV, 3)) end
return {'OK'}
`;

/** evRelease. KEYS: ev:lease. ARGV: me. Gives the lease up (shutdown), if held. */
const EV_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return {'OK'}
`;

interface ScriptDef {
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** Every script, with its KEYS count. */
export const SCRIPTS = {
  boot: { numberOfKeys: 2, lua: BOOT },
  login: { numberOfKeys: 5, lua: LOGIN },
  resume: { numberOfKeys: 2, lua: RESUME },
  pushMany: { numberOfKeys: 1, lua: PUSH_MANY },
  ackMany: { numberOfKeys: 1, lua: ACK_MANY },
  detach: { numberOfKeys: 3, lua: DETACH },
  end: { numberOfKeys: 3, lua: END },
  range: { numberOfKeys: 3, lua: RANGE },
  touch: { numberOfKeys: 1, lua: TOUCH },
  sweepIdle: { numberOfKeys: 1, lua: SWEEP_IDLE },
  beat: { numberOfKeys: 3, lua: BEAT },
  rejoin: { numberOfKeys: 1, lua: REJOIN },
  reapPage: { numberOfKeys: 3, lua: REAP_PAGE },
  reqBeginMany: { numberOfKeys: 1, lua: REQ_BEGIN_MANY },
  reqFinishMany: { numberOfKeys: 0, lua: REQ_FINISH_MANY },
  evTake: { numberOfKeys: 2, lua: EV_TAKE },
  evDone: { numberOfKeys: 2, lua: EV_DONE },
  evRelease: { numberOfKeys: 1, lua: EV_RELEASE },
} as const satisfies Record<string, ScriptDef>;

export type ScriptName = keyof typeof SCRIPTS;
export type ScriptArg = string | number | Buffer;

/** The ioredis command a script is defined as (its `…Buffer` twin answers bulk strings as Buffers). */
const commandOf = (name: ScriptName): string => `gate${name.charAt(0).toUpperCase()}${name.slice(1)}`;

/** Command names, built once (a request runs two scripts: no string building on that path). */
const COMMANDS = Object.fromEntries(Object.keys(SCRIPTS).map((n) => [n, commandOf(n as ScriptName)])) as Record<ScriptName, string>;
const BUFFER_COMMANDS = Object.fromEntries(Object.keys(SCRIPTS).map((n) => [n, `${commandOf(n as ScriptName)}Buffer`])) as Record<ScriptName, string>;

/** Defines every script on `redis` (idempotent: a second definition replaces the first). */
export function defineScripts(redis: Redis): void {
  for (const [name, def] of Object.entries(SCRIPTS) as [ScriptName, ScriptDef][]) redis.defineCommand(commandOf(name), def);
}

/**
 * Runs a script defined by `defineScripts`: KEYS then ARGV in `args`. `binary` answers bulk
 * strings as Buffers (scripts that return push bodies); otherwise as UTF-8 strings.
 */
export function runScript(redis: Redis, name: ScriptName, args: readonly ScriptArg[], binary = false): Promise<unknown> {
  const command = (binary ? BUFFER_COMMANDS : COMMANDS)[name];
  const fn = (redis as unknown as Record<string, ((...a: ScriptArg[]) => Promise<unknown>) | undefined>)[command];
  if (fn === undefined) throw new TypeError(`runScript: ${command} is not defined on this client (call defineScripts first)`);
  return fn.apply(redis, args as ScriptArg[]);
}
