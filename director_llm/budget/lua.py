"""Lua scripts behind ``RedisLedger``: each ledger operation is ONE atomic script.

Data model (``T`` is the configured prefix followed by the hash tag ``{budget}``, e.g.
``director:{budget}``, so every key lands in one Redis Cluster slot and a script may
touch them all)::

    T:w:<window>:<period>   hash   spent     -> nano-USD settled in this window
                                   reserved  -> nano-USD held by open reservations
                                   r:<id>    -> nano-USD held by reservation <id>
    T:x:<window>:<period>   zset   <id> scored by the reservation's expiry (epoch ms)
    T:s:<hour>              hash   "<group>|<metric>" -> counter (requests, tokens, cost)
    T:d:<hour>              hash   <id> -> "s<live>" / "r<live>": reservations of <hour> that
                                   were settled / released (expires with the hour window)

``<window>`` is ``hour``, ``day``, ``provider:<name>:hour`` or ``provider:<name>:day``;
``<period>`` is ``2026-11-25T20`` (hour) or ``2026-11-25`` (day).

Keys expire with a relative ``PEXPIRE`` (milliseconds left until the window's keep time,
computed by the caller on the ledger's clock), never with ``PEXPIREAT``: an absolute expiry
taken from the app's clock would be read against Redis's clock, and an app clock behind
Redis's would create every key already expired (see ``director_llm.budget.redis``).

Every script that reads a window first *purges* it: reservations whose expiry score is
<= now are removed from the zset and their amount is subtracted from ``reserved``. A
process that crashes between reserve and settle therefore holds budget for at most the
reservation TTL, and nothing has to run in the background to reclaim it.

Every script is idempotent, so a caller may retry it after a lost reply (the connection
dropped after Redis ran the script but before the answer arrived) without double-booking:
RESERVE grants again without a second hold when ``r:<id>`` is already held, and SETTLE /
RELEASE record the reservation id in ``T:d:<hour>`` and turn any later call for that id
into a no-op that returns the first call's answer. ``T:d`` costs one small field per
request for at most the hour plus its keep time (~3 h).

All amounts travel as decimal integer strings and are added with HINCRBY using the
very string that was stored (``'-' .. held`` to subtract), so no value ever passes
through a Lua double on its way into Redis. Lua doubles are only used to *compare*
``spent + reserved + amount > limit``, which is exact below 2^53 nano-USD (~9 M USD).
"""

from __future__ import annotations

__all__ = ["RESERVE", "SETTLE", "STATUS"]

# Shared prelude: remove expired reservations of one window and give their amount back.
_PURGE = """
local function purge(h, z, now)
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #ids == 0 then return end
  for _, id in ipairs(ids) do
    local held = redis.call('HGET', h, 'r:' .. id)
    if held then
      redis.call('HINCRBY', h, 'reserved', '-' .. held)
      redis.call('HDEL', h, 'r:' .. id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
end
"""

# KEYS: for window i, KEYS[2i-1] = hash, KEYS[2i] = zset.
# ARGV: now_ms, expires_ms, id, amount, then per window i: limit ('' = none), keep_ttl_ms.
# Returns {1} when granted, {0, i, spent, reserved} for the first window that refused.
RESERVE = (
    _PURGE
    + """
local n = #KEYS / 2
local now, amount = ARGV[1], tonumber(ARGV[4])
local field = 'r:' .. ARGV[3]
-- A retry of a reserve whose reply was lost: the hold is already there.
if redis.call('HEXISTS', KEYS[1], field) == 1 then return {1} end
for i = 1, n do purge(KEYS[2*i-1], KEYS[2*i], now) end
for i = 1, n do
  local limit = ARGV[3 + 2*i]
  if limit ~= '' then
    local v = redis.call('HMGET', KEYS[2*i-1], 'spent', 'reserved')
    local spent, reserved = v[1] or '0', v[2] or '0'
    if tonumber(spent) + tonumber(reserved) + amount > tonumber(limit) then
      return {0, i, spent, reserved}
    end
  end
end
for i = 1, n do
  local h, z, keep = KEYS[2*i-1], KEYS[2*i], ARGV[4 + 2*i]
  redis.call('HINCRBY', h, 'reserved', ARGV[4])
  redis.call('HSET', h, field, ARGV[4])
  redis.call('ZADD', z, ARGV[2], ARGV[3])
  redis.call('PEXPIRE', h, keep)
  redis.call('PEXPIRE', z, keep)
end
return {1}
"""
)

# Settle (and release, with actual = '0' and no stats pairs).
# KEYS: window pairs as above, then the hour's stats hash, then the hour's done hash.
# ARGV: id, actual, n, keep_ttl_ms per window (n of them), stats_keep_ttl_ms,
#       kind ('s' settle / 'r' release), then (field, increment) pairs for the stats hash.
# Returns {live, duplicate}: live = 1 when the reservation was still held (0 when it had
# expired or never existed); duplicate = 1 when this id was already settled or released,
# in which case nothing changed and live is the first call's.
SETTLE = """
local n = tonumber(ARGV[3])
local id, actual = ARGV[1], ARGV[2]
local done = KEYS[2*n + 2]
local before = redis.call('HGET', done, id)
if before then return {tonumber(string.sub(before, 2)), 1} end
local field = 'r:' .. id
local live = 0
for i = 1, n do
  local h, z = KEYS[2*i-1], KEYS[2*i]
  local held = redis.call('HGET', h, field)
  if held then
    live = 1
    redis.call('HINCRBY', h, 'reserved', '-' .. held)
    redis.call('HDEL', h, field)
    redis.call('ZREM', z, id)
  end
  if actual ~= '0' then
    redis.call('HINCRBY', h, 'spent', actual)
    redis.call('PEXPIRE', h, ARGV[3 + i])
  end
end
local j = 6 + n
if j < #ARGV then
  local s = KEYS[2*n + 1]
  while j < #ARGV do
    redis.call('HINCRBY', s, ARGV[j], ARGV[j + 1])
    j = j + 2
  end
  redis.call('PEXPIRE', s, ARGV[4 + n])
end
redis.call('HSET', done, id, ARGV[5 + n] .. live)
redis.call('PEXPIRE', done, ARGV[4])
return {live, 0}
"""

# KEYS: window pairs. ARGV: now_ms. Purges, then returns {spent1, reserved1, spent2, ...}.
STATUS = (
    _PURGE
    + """
local out = {}
for i = 1, #KEYS / 2 do
  purge(KEYS[2*i-1], KEYS[2*i], ARGV[1])
  local v = redis.call('HMGET', KEYS[2*i-1], 'spent', 'reserved')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
"""
)
