// The Lua scripts of the Redis tier. Each runs atomically on the server and does
// O(dependencies) work, never a scan. Entries are hashes:
//   v payload   f fresh-until (wall ms)   s stale-until (wall ms; the key expires then)
//   d last load duration (ms)   t tags ('\n'-joined)
//   x dependencies: "<version key>\n<version>\n" repeated (prefix levels and tags)
// An entry is valid while every dependency's version key still holds the version it was
// written under (a missing version key reads as "0").
#pragma once
#include <string_view>

namespace herdcache::scripts {

// KEYS[1] entry; ARGV: the key's dependency version keys (used on a miss).
// Hit: {1, v, f, s, d, t}.  Miss (absent or invalidated): {0, version of each ARGV}.
inline constexpr std::string_view kRead = R"lua(
local e = redis.call('HMGET', KEYS[1], 'v', 'f', 's', 'd', 'x', 't')
if e[1] then
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
  if valid then return {1, e[1], e[2], e[3], e[4] or '0', e[6] or ''} end
  redis.call('UNLINK', KEYS[1])
end
local out = {0}
if #ARGV > 0 then
  local cur = redis.call('MGET', unpack(ARGV))
  for j = 1, #ARGV do out[j + 1] = cur[j] or '0' end
end
return out
)lua";

// KEYS[1] entry; ARGV: v, f, s, d, t, mode, then dependencies.
// mode "e": pairs (version key, expected version); the write is refused (0) if any
// version moved since it was read: an invalidation happened while the value loaded.
// mode "c": version keys only; the entry records their current versions.
inline constexpr std::string_view kWrite = R"lua(
local names, want = {}, {}
if ARGV[6] == 'e' then
  for j = 7, #ARGV, 2 do names[#names + 1] = ARGV[j]; want[#want + 1] = ARGV[j + 1] end
else
  for j = 7, #ARGV do names[#names + 1] = ARGV[j] end
end
local deps = {}
if #names > 0 then
  local have = redis.call('MGET', unpack(names))
  for j = 1, #names do
    local h = have[j] or '0'
    if want[j] and h ~= want[j] then return 0 end
    deps[#deps + 1] = names[j] .. '\n' .. h .. '\n'
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', ARGV[2], 's', ARGV[3], 'd', ARGV[4], 't', ARGV[5], 'x', table.concat(deps))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
)lua";

// KEYS: version keys to bump; ARGV[1] channel, ARGV[2] message. Returns #KEYS.
inline constexpr std::string_view kBump = R"lua(
for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return #KEYS
)lua";

// KEYS[1] entry; ARGV[1] channel, ARGV[2] message. Returns 1 if the entry existed.
inline constexpr std::string_view kDelete = R"lua(
local n = redis.call('UNLINK', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
)lua";

}  // namespace herdcache::scripts
