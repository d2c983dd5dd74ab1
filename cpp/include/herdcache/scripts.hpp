// The Lua scripts of the Redis tier. Each runs atomically on the server and does
// O(dependencies) work, never a scan. Entries are hashes:
//   v payload   f fresh-until (wall ms)   s stale-until (wall ms; the key expires then)
//   d last load duration (ms)   t tags ('\n'-joined)
//   x dependencies: "<version key>\n<version>\n" repeated (prefix levels and tags, the
//     dependency tags of entries it was built from among them: invalidation.hpp)
// An entry is valid while every dependency's version key still holds the version it was
// written under (a missing version key reads as "0").
//
// Leases (Facebook's memcache leases, NSDI 2013): "<ns>#l:<key>" holds the token of the one
// process allowed to load a missing or stale key; "<ns>#w:<key>" says someone waits for
// it, so the write publishes "filled" only when it matters. Invalidations revoke leases:
// a key delete removes its lease, a prefix or tag bump changes a version the write
// checks, and a pattern or clear bumps "<ns>#gen", which every write checks.
#pragma once
#include <string_view>

namespace herdcache::scripts {

// KEYS[1] entry, KEYS[2] its lease, KEYS[3] its waiters flag, KEYS[4] the namespace
// generation; ARGV[1] lease token ("" = no lease wanted), ARGV[2] lease ms, ARGV[3]
// refresh-before (wall ms: an entry fresh only until then wants a refresh), ARGV[4] now
// (the caller's wall ms: an entry stale until then is absent, whatever Redis' own clock
// says), then the key's dependency version keys (their versions are returned on a miss,
// for the write that follows).
// Hit:  {1, v, f, s, d, t, lease, x[, generation, versions...]}
//        lease: 1 granted (stale: refresh it), 0 not needed or held elsewhere; x: the
//        dependency record, current as of this read; with the lease granted, the guard
//        its refresh's write must prove, as for a miss
// Miss: {0, lease, generation, versions...[, holder]}   lease: 1 granted, 2 held elsewhere
//        (then holder: the holder's token, so a waiter can tell a lease that never frees
//        from one taken over), 0 none
// The guard (the namespace generation and the current version of each dependency) is
// what makes a write refused when any invalidation covering the key lands after this
// read: a key delete (it revokes the lease), a prefix, resource or tag bump (a version
// moves), a pattern or clear (the generation moves).
// A holder's lease is taken over by someone else only once it expired (PX), so a leader
// that died is replaced after lock_timeout and never sooner.
inline constexpr std::string_view kRead = R"lua(
local function lease()
  if ARGV[1] == '' then return 0 end
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
  -- Already this token's (its load starts over: the leader was cancelled): still granted.
  if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    return 1
  end
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
  return 2
end
local function guard(out)
  out[#out + 1] = redis.call('GET', KEYS[4]) or '0'
  if #ARGV > 4 then
    local cur = redis.call('MGET', unpack(ARGV, 5))
    for j = 1, #ARGV - 4 do out[#out + 1] = cur[j] or '0' end
  end
  return out
end
local e = redis.call('HMGET', KEYS[1], 'v', 'f', 's', 'd', 'x', 't')
if e[1] and tonumber(e[3]) > tonumber(ARGV[4]) then
  local names, want = {}, {}
  local odd = true
  for part in string.gmatch(e[5] or '', '([^\n]*)\n') do
    if odd then names[#names + 1] = part else want[#want + 1] = part end
    odd = not odd
  end
  local valid = true
  if #names > 0 then
    local have = redis.call('MGET', unpack(names))
    for j = 1, #names do
      if (have[j] or '0') ~= want[j] then valid = false break end
    end
  end
  if valid then
    local l = 0
    if tonumber(e[2]) <= tonumber(ARGV[3]) and lease() == 1 then l = 1 end
    local out = {1, e[1], e[2], e[3], e[4] or '0', e[6] or '', l, e[5] or ''}
    if l == 1 then return guard(out) end
    return out
  end
  redis.call('UNLINK', KEYS[1])
end
local l = lease()
local out = guard({0, l})
if l == 2 then out[#out + 1] = redis.call('GET', KEYS[2]) end
return out
)lua";

// KEYS[1] entry, KEYS[2] lease, KEYS[3] waiters flag, KEYS[4] namespace generation;
// ARGV: v, f, s, d, t, mode, lease token ("" = none), expected generation ("" = any),
// fill channel, condition ("" | "nx": only if absent, or stale by ARGV[11], the caller's
// wall ms | "eq": only if the stored payload's body is ARGV[11]'s: a signed entry's MAC
// differs with its lifetime), the invalidation channel and an announcement for it ("" =
// none: a written value that replaces one other instances may hold in memory tells them
// in the same step), then dependencies from ARGV[14].
// mode "e": pairs (version key, expected version); "c": version keys only (the entry
// records their current versions). Refused (0) when the lease is no longer ours or any
// version or the generation moved since the read: an invalidation happened while the
// value loaded, and its result must not land after it. Written (1) otherwise; waiters
// are told on the fill channel.
inline constexpr std::string_view kWrite = R"lua(
local ours = ARGV[7] ~= '' and redis.call('GET', KEYS[2]) == ARGV[7]
-- A payload's body: past "HC\0" or "HC\2", or past "HC\1" or "HC\3" and its 32-byte MAC
-- (entry.hpp): flag 1 is "signed".
local function body(p)
  if not p then return nil end
  if string.byte(p, 3) % 2 == 1 then return string.sub(p, 36) end
  return string.sub(p, 4)
end
local function refuse()
  -- A refused leader gives its lease back and wakes the waiters: one of them loads the
  -- new data now instead of waiting for the lease to expire.
  if ours then
    redis.call('DEL', KEYS[2])
    if redis.call('DEL', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[9], string.len(KEYS[1]) .. ':' .. KEYS[1]) end
  end
  return 0
end
if ARGV[7] ~= '' and not ours then return 0 end
if ARGV[8] ~= '' and (redis.call('GET', KEYS[4]) or '0') ~= ARGV[8] then return refuse() end
if ARGV[10] == 'nx' then
  local stale_until = redis.call('HGET', KEYS[1], 's')
  if stale_until and tonumber(stale_until) > tonumber(ARGV[11]) then return 2 end
end
if ARGV[10] == 'eq' and body(redis.call('HGET', KEYS[1], 'v')) ~= body(ARGV[11]) then return 2 end
local names, want = {}, {}
if ARGV[6] == 'e' then
  for j = 14, #ARGV, 2 do names[#names + 1] = ARGV[j]; want[#want + 1] = ARGV[j + 1] end
else
  for j = 14, #ARGV do names[#names + 1] = ARGV[j] end
end
local deps = {}
if #names > 0 then
  local have = redis.call('MGET', unpack(names))
  for j = 1, #names do
    local h = have[j] or '0'
    if want[j] and h ~= want[j] then return refuse() end
    deps[#deps + 1] = names[j] .. '\n' .. h .. '\n'
  end
  -- A key's dependency version ("#t:#k:", invalidation.hpp) lives while an entry built
  -- from the key may: it outlives every such entry (a delete also keeps it for a while,
  -- see kDelete).
  for j = 1, #names do
    if string.find(names[j], '#t:#k:', 1, true) and
       not redis.call('SET', names[j], have[j] or '0', 'NX', 'PXAT', ARGV[3]) then
      redis.call('PEXPIREAT', names[j], ARGV[3], 'GT')
    end
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', ARGV[2], 's', ARGV[3], 'd', ARGV[4], 't', ARGV[5], 'x', table.concat(deps))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
if ours then redis.call('DEL', KEYS[2]) end
if ARGV[13] ~= '' then redis.call('PUBLISH', ARGV[12], ARGV[13]) end
if redis.call('DEL', KEYS[3]) == 1 then
  -- Waiters get the entry in the notice itself ("<len>:<bytes>" fields: key, v, f, s, d,
  -- t, x), so they need no second read.
  local msg = {}
  for _, field in ipairs({KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], table.concat(deps)}) do
    msg[#msg + 1] = string.len(field) .. ':' .. field
  end
  redis.call('PUBLISH', ARGV[9], table.concat(msg))
end
return 1
)lua";

// KEYS[1] entry; ARGV[1] delta, ARGV[2] now (the caller's wall ms), ARGV[3] f and ARGV[4]
// s of a new entry (or of every entry with ARGV[5] = "1": a ttl given), ARGV[6] a new
// entry's tags, ARGV[7] the invalidation channel and ARGV[8] an announcement for it, then
// the key's dependency version keys (a new entry records their current versions).
// Adds delta to the integer an unsigned JSON entry holds (absent, stale or invalidated: 0)
// and keeps its lifetime, tags and dependencies; announced like any replacing write.
// {1, new value} | {2, the stored body} (not an integer: nothing changed) | {3} (signed or
// compressed: the caller must compare-and-set, this can neither sign nor decompress) | {4} (the sum would leave the range).
// Integers stay within +-(2^53 - 1), what a Lua number holds exactly.
inline constexpr std::string_view kIncr = R"lua(
local e = redis.call('HMGET', KEYS[1], 'v', 'f', 's', 'x', 't', 'd')
local live = e[1] and tonumber(e[3]) > tonumber(ARGV[2])
if live then
  local names, want, odd = {}, {}, true
  for part in string.gmatch(e[4] or '', '([^\n]*)\n') do
    if odd then names[#names + 1] = part else want[#want + 1] = part end
    odd = not odd
  end
  if #names > 0 then
    local have = redis.call('MGET', unpack(names))
    for j = 1, #names do
      if (have[j] or '0') ~= want[j] then live = false break end
    end
  end
end
local cur, f, s, x, t, d = 0, ARGV[3], ARGV[4], nil, ARGV[6], '0'
if live then
  if string.byte(e[1], 3) ~= 0 then return {3} end
  local b = string.sub(e[1], 4)
  if not string.match(b, '^%-?%d+$') or string.len(b) > 16 then return {2, b} end
  cur = tonumber(b)
  if ARGV[5] ~= '1' then f, s = e[2], e[3] end
  x, t, d = e[4] or '', e[5] or '', e[6] or '0'
end
local n = cur + tonumber(ARGV[1])
if n > 9007199254740991 or n < -9007199254740991 then return {4} end
if not x then
  local deps = {}
  if #ARGV > 8 then
    local have = redis.call('MGET', unpack(ARGV, 9))
    for j = 9, #ARGV do deps[#deps + 1] = ARGV[j] .. '\n' .. (have[j - 8] or '0') .. '\n' end
  end
  x = table.concat(deps)
end
redis.call('HSET', KEYS[1], 'v', 'HC\0' .. string.format('%d', n), 'f', f, 's', s, 'd', d, 't', t, 'x', x)
redis.call('PEXPIREAT', KEYS[1], s)
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return {1, n}
)lua";

// KEYS[1] lease, KEYS[2] waiters flag; ARGV[1] token, ARGV[2] fill channel, ARGV[3] entry
// key. A leader whose load failed gives its lease back and wakes the waiters, so one of
// them loads now rather than after lock_timeout. Returns 1 if the lease was still ours.
inline constexpr std::string_view kRelease = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[2], string.len(ARGV[3]) .. ':' .. ARGV[3]) end
return 1
)lua";

// KEYS: version keys to bump; ARGV[1] channel, ARGV[2] message. Returns #KEYS.
inline constexpr std::string_view kBump = R"lua(
for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return #KEYS
)lua";

// KEYS[1] entry, KEYS[2] its lease (revoked), KEYS[3] its dependency version (bumped);
// ARGV[1] channel, ARGV[2] message, ARGV[3] how long the bumped version lives at least
// (ms). Returns 1 if the entry existed.
// The version is bumped whether or not anything was built from the key yet: a load in
// flight may have read the key and record it as a dependency only when it writes, with
// the version it saw (absent: "0"), and that write must see the bump. The version key
// then lives at least ARGV[3] ms (RedisTier::kKeyVersionKeepMs), or as long as the
// entries built from the key, whichever is longer (kWrite extends it), so deleting keys
// nothing depends on leaves one small key each behind for that long, no longer.
inline constexpr std::string_view kDelete = R"lua(
local n = redis.call('UNLINK', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
)lua";

// One batch of a pattern invalidation's SCAN. KEYS: n entries, then the n dependency
// versions of those keys; ARGV[1] channel, ARGV[2] a tag invalidation of their dependency
// tags, published when any of them was bumped (other instances' memory tiers drop what
// was built from them). Returns how many entries existed.
inline constexpr std::string_view kUnlinkBatch = R"lua(
local n = #KEYS / 2
local removed = redis.call('UNLINK', unpack(KEYS, 1, n))
local bumped = false
for i = n + 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCR', KEYS[i])
    bumped = true
  end
end
if bumped then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return removed
)lua";

}  // namespace herdcache::scripts
