//! The Lua scripts that make each change to the room one atomic step in
//! Redis: the id counter, the stream (the history), the names, and the
//! publish on the room's channel happen together, so ids, stream and pub/sub
//! order agree everywhere.
//!
//! Keys, under the prefix `P` (`--cluster-name`): `P:id` (the last id),
//! `P:log` (the stream of records, id `0-ID`), `P:names` (hash: folded
//! name -> `NODE NAME`), `P:nodes` (set of servers), `P:node:NODE` (a
//! server's heartbeat, with a TTL), `P:members:NODE` (set of a server's
//! folded names), `P:gone:NODE` (a server the others took out of the room
//! because its heartbeat expired: if it was only slow, it finds out at its
//! next heartbeat and puts its users back). Channels: `P:room` (records), `P:to:NODE` (private
//! messages for that server). Every script takes `P` as `ARGV[1]`; the keys
//! are built from it (one Redis, not Redis Cluster).
//!
//! Records are built as in `record.rs`: `ID NODE CONN TAG KIND A B LINE`.

/// What every script starts with: the prefix, and `order`, which gives a
/// record body the next id and appends it to the stream.
const PRELUDE: &str = r#"
local P = ARGV[1]
local names = P .. ':names'
local function order(maxlen, body)
  local id = redis.call('INCR', P .. ':id')
  redis.call('XADD', P .. ':log', 'MAXLEN', '~', maxlen, '0-' .. id, 'r', body)
  return id .. ' ' .. body
end
local function owner_of(v)
  return string.match(v, '^(%S+) ')
end
local function announce(limit, n)
  return limit == 0 or n <= limit
end
-- Takes folded name f, held by node n as v ("NODE NAME"), out of the room
-- (as "has disconnected") and adds its record to out.
local function drop_name(n, f, v, maxlen, limit, out)
  local count = redis.call('HLEN', names)
  redis.call('HDEL', names, f)
  redis.call('SREM', P .. ':members:' .. n, f)
  local name = string.sub(v, #n + 2)
  local body = n .. ' 0 0 Q ' .. name .. ' - '
  if announce(limit, count) then
    out[#out + 1] = order(maxlen, body .. '[SERVER]: ' .. name .. ' has disconnected.')
  else
    out[#out + 1] = '0 ' .. body
  end
end
"#;

/// Orders a turn's public lines. ARGV: P, maxlen, body...
/// Returns the number of records.
pub const PUBLISH: &str = r#"
local out = {}
for i = 3, #ARGV do
  out[#out + 1] = order(ARGV[2], ARGV[i])
end
if #out > 0 then
  redis.call('PUBLISH', P .. ':room', table.concat(out, '\n'))
end
return #out
"#;

/// Claims a name (a login). ARGV: P, maxlen, limit, node, conn, tag, name,
/// folded, line. Returns 1, or 0 if the name is taken. The join is told to
/// everyone (a record with an id and the line) while the room holds at most
/// `limit` users, the newcomer included; above it, a record without a line.
pub const JOIN: &str = r#"
local node, name, folded = ARGV[4], ARGV[7], ARGV[8]
if redis.call('HSETNX', names, folded, node .. ' ' .. name) == 0 then
  return 0
end
redis.call('SADD', P .. ':members:' .. node, folded)
local body = node .. ' ' .. ARGV[5] .. ' ' .. ARGV[6] .. ' J ' .. name .. ' - '
local rec
if announce(tonumber(ARGV[3]), redis.call('HLEN', names)) then
  rec = order(ARGV[2], body .. ARGV[9])
else
  rec = '0 ' .. body
end
redis.call('PUBLISH', P .. ':room', rec)
return 1
"#;

/// Gives a name up. ARGV: P, maxlen, limit, node, name, folded, line (empty
/// for a silent release). Only a name this node holds is given up.
pub const LEAVE: &str = r#"
local node, name, folded, line = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local v = redis.call('HGET', names, folded)
if not v or owner_of(v) ~= node then
  return 0
end
local n = redis.call('HLEN', names)
redis.call('HDEL', names, folded)
redis.call('SREM', P .. ':members:' .. node, folded)
local body = node .. ' 0 0 Q ' .. name .. ' - '
local rec
if line ~= '' and announce(tonumber(ARGV[3]), n) then
  rec = order(ARGV[2], body .. line)
else
  rec = '0 ' .. body
end
redis.call('PUBLISH', P .. ':room', rec)
return 1
"#;

/// Renames. ARGV: P, maxlen, node, conn, tag, old, old folded, new, new
/// folded, line. Returns 1, or 0 if the new name is taken. Always told.
pub const RENAME: &str = r#"
local node, old, oldf, new, newf = ARGV[3], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if newf ~= oldf then
  if redis.call('HEXISTS', names, newf) == 1 then
    return 0
  end
  local v = redis.call('HGET', names, oldf)
  if v and owner_of(v) == node then
    redis.call('HDEL', names, oldf)
    redis.call('SREM', P .. ':members:' .. node, oldf)
  end
end
redis.call('HSET', names, newf, node .. ' ' .. new)
redis.call('SADD', P .. ':members:' .. node, newf)
local body = node .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' N ' .. old .. ' ' .. new .. ' '
redis.call('PUBLISH', P .. ':room', order(ARGV[2], body .. ARGV[10]))
return 1
"#;

/// The heartbeat. ARGV: P, node, lifetime in ms. Returns 1, or 0 (and
/// beats no more) if the others took this server out of the room meanwhile:
/// it must resync to put its users back.
pub const BEAT: &str = r#"
if redis.call('EXISTS', P .. ':gone:' .. ARGV[2]) == 1 then
  return 0
end
redis.call('SET', P .. ':node:' .. ARGV[2], '1', 'PX', ARGV[3])
redis.call('SADD', P .. ':nodes', ARGV[2])
return 1
"#;

/// Takes dead servers' users out, once: ARGV: P, maxlen, limit, self,
/// target. With a target (a server shutting down: itself), that server;
/// otherwise every server whose heartbeat expired. Each user gets its
/// "has disconnected" record; the script runs atomically, so a second
/// server running it finds nothing left to do. A server taken out because
/// its heartbeat expired gets a tombstone (for a day), so that, if it was
/// only slow, its next heartbeat tells it. Returns users removed.
pub const REAP: &str = r#"
local maxlen, limit, self, target = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local out = {}
local function reap(n)
  local members = P .. ':members:' .. n
  for _, f in ipairs(redis.call('SMEMBERS', members)) do
    local v = redis.call('HGET', names, f)
    if v and owner_of(v) == n then
      drop_name(n, f, v, maxlen, limit, out)
    end
  end
  redis.call('DEL', members, P .. ':node:' .. n)
  redis.call('SREM', P .. ':nodes', n)
end
if target ~= '' then
  reap(target)
else
  for _, n in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
    if n ~= self and redis.call('EXISTS', P .. ':node:' .. n) == 0 then
      reap(n)
      redis.call('SET', P .. ':gone:' .. n, '1', 'EX', 86400)
    end
  end
end
if #out > 0 then
  redis.call('PUBLISH', P .. ':room', table.concat(out, '\n'))
end
return #out
"#;

/// After a (re)connection, or a heartbeat that found this server taken out:
/// the heartbeat, ids that never go back (a Redis that lost its data
/// restarts the counter), and this server's names made to match its users.
/// ARGV: P, maxlen, limit, node, lifetime ms, last id, fence ms, then
/// name, folded pairs. A counter behind this server's last id means Redis
/// lost its data: the counter is lifted, and a fence is put up for `fence
/// ms` (once), during which no server publishes, so every other server can
/// reconnect and lift the counter to its own last id first: no id is ever
/// given to two lines. Returns the fence's remaining ms (0: none), then
/// the conflicts. Names this server held but no longer has are given up (told as
/// disconnected); names it has but Redis does not are claimed again: told
/// as joined if the others took this server out (they were told its users
/// left), quietly if Redis lost them (a fresh Redis: nobody was told
/// anything); a name another server took meanwhile is returned as a
/// conflict.
pub const RESYNC: &str = r#"
local maxlen, limit, node = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local told = redis.call('DEL', P .. ':gone:' .. node) == 1
redis.call('SET', P .. ':node:' .. node, '1', 'PX', ARGV[5])
redis.call('SADD', P .. ':nodes', node)
local last = tonumber(ARGV[6])
if tonumber(redis.call('GET', P .. ':id') or '0') < last then
  redis.call('SET', P .. ':id', last)
  redis.call('SET', P .. ':fence', '1', 'PX', ARGV[7], 'NX')
end
local fence = redis.call('PTTL', P .. ':fence')
if fence < 0 then
  fence = 0
end
local members = P .. ':members:' .. node
local want = {}
for i = 8, #ARGV - 1, 2 do
  want[ARGV[i + 1]] = ARGV[i]
end
local out, conflicts = {}, {fence}
for _, f in ipairs(redis.call('SMEMBERS', members)) do
  if not want[f] then
    local v = redis.call('HGET', names, f)
    redis.call('SREM', members, f)
    if v and owner_of(v) == node then
      drop_name(node, f, v, maxlen, limit, out)
    end
  end
end
for i = 8, #ARGV - 1, 2 do
  local name, f = ARGV[i], ARGV[i + 1]
  local v = redis.call('HGET', names, f)
  if not v then
    redis.call('HSET', names, f, node .. ' ' .. name)
    redis.call('SADD', members, f)
    local body = node .. ' 0 0 J ' .. name .. ' - '
    if told and announce(limit, redis.call('HLEN', names)) then
      out[#out + 1] = order(maxlen, body .. '[SERVER]: ' .. name .. ' joined the chat!')
    else
      out[#out + 1] = '0 ' .. body
    end
  elseif owner_of(v) ~= node then
    conflicts[#conflicts + 1] = name
  else
    redis.call('SADD', members, f)
  end
end
if #out > 0 then
  redis.call('PUBLISH', P .. ':room', table.concat(out, '\n'))
end
return conflicts
"#;

/// A script with the prelude, ready for `EVAL`.
pub fn full(script: &str) -> String {
    format!("{PRELUDE}{script}")
}
