//! Lua scripts: each runs atomically on the Redis server, on keys of one hash slot.

use redis::Script;
use std::sync::LazyLock;

/// KEYS[1] = mark; ARGV[1] = value (decimal, no leading zeros). Returns 1 if raised.
/// Compares as decimal strings (length first), so every u64 compares exactly.
pub static RAISE_HIGH_WATER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
local v = ARGV[1]
if cur then
  if #cur > #v or (#cur == #v and cur >= v) then return 0 end
end
redis.call('SET', KEYS[1], v)
return 1
",
    )
});

/// KEYS[1] = counter hash; ARGV = now, window_end if a new window starts, ttl seconds.
/// A window starts at the first hit; a hit at or after its end starts a new one.
pub static HIT_COUNTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')
if e > tonumber(ARGV[1]) then
  return redis.call('HINCRBY', KEYS[1], 'c', 1)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'c', 1, 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// KEYS[1] = a record; ARGV = now, 'prefixed' | 'hash'. Deletes it if it expired by `now`.
pub static SWEEP_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e
if ARGV[2] == 'hash' then
  e = redis.call('HGET', KEYS[1], 'e')
else
  local v = redis.call('GET', KEYS[1])
  if v then
    local nl = string.find(v, '\n', 1, true)
    if nl then e = string.sub(v, 1, nl - 1) end
  end
end
if e and tonumber(e) and tonumber(e) <= tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// KEYS[1] = an IdP session index (a SET of session keys); ARGV = session key, ttl seconds.
/// Adds the key; the index lives at least `ttl` more seconds (never shortened).
pub static INDEX_IDP_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
",
    )
});
