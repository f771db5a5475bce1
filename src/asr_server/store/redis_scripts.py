"""The Redis store's Lua scripts: every state change of a task is one of them, so it is atomic
on the Redis server and needs no lock between replicas. Each says its KEYS and ARGV."""

# KEYS: queued, running, prefix | ARGV: limit, lease prefix, lease ms
# Takes expired leases first (their tasks are the oldest), then queued tasks in id order; each
# claim counts an attempt. Returns a flat list: id, options, attempts, owner.
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[3])
local out = {}
local taken = 0
local function take(id)
  local key = KEYS[3] .. 'task:' .. id
  if redis.call('HEXISTS', key, 'status') == 0 then
    redis.call('ZREM', KEYS[2], id)
    return
  end
  local attempts = redis.call('HINCRBY', key, 'attempts', 1)
  local lease = ARGV[2] .. '/' .. id .. '/' .. attempts
  redis.call('HSET', key, 'status', 'running', 'lease', lease)
  redis.call('ZADD', KEYS[2], deadline, id)
  table.insert(out, id); table.insert(out, redis.call('HGET', key, 'options'))
  table.insert(out, attempts); table.insert(out, redis.call('HGET', key, 'owner') or '')
  taken = taken + 1
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)) do
  take(id)
end
if taken < limit then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - taken - 1)) do
    redis.call('ZREM', KEYS[1], id)
    take(id)
  end
end
return out
"""

# KEYS: task, audio, running | ARGV: lease, status, result, error, ttl seconds (0 = keep), id,
# error kind, error message, key prefix. Ends a task only under the current lease, takes it out
# of its owner's unfinished set and, with a callback_url, adds its delivery; returns 1 if it did.
END = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'result', ARGV[3], 'error', ARGV[4],
           'error_kind', ARGV[7], 'error_message', ARGV[8])
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[9] .. 'owned:' .. owner, ARGV[6]) end
local options = cjson.decode(redis.call('HGET', KEYS[1], 'options') or '{}')
if type(options['callback_url']) == 'string' then  -- its webhook, in the same script
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'delivery_attempt', 1)
  redis.call('ZADD', ARGV[9] .. 'deliveries', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[6])
end
redis.call('HDEL', KEYS[1], 'lease')
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[6])
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

# KEYS: deliveries, prefix | ARGV: limit, lease ms. Due deliveries, each put off by the lease
# while it is made; returns id, url, attempt triples (a delivery whose task is gone is dropped).
TAKE_DELIVERIES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  local key = KEYS[2] .. 'task:' .. id
  local options = redis.call('HGET', key, 'options')
  if options then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    table.insert(out, id); table.insert(out, cjson.decode(options)['callback_url'])
    table.insert(out, redis.call('HGET', key, 'delivery_attempt') or '1')
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: deliveries, task | ARGV: id, attempt, delay ms. The next attempt, on the server's clock.
RETRY_DELIVERY = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'delivery_attempt', ARGV[2])
redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3]), ARGV[1])
"""

# KEYS: running, prefix | ARGV: lease ms, then id, lease pairs. Returns the ids whose lease is lost.
RENEW = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2] .. 'task:' .. id, 'lease') == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    table.insert(lost, id)
  end
end
return lost
"""

# KEYS: queued, running, prefix | ARGV: lease prefix ('{replica}/'). A restarted replica holds
# nothing: its old leases are handed back at once instead of waiting for them to run out.
RELEASE_MINE = """
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = KEYS[3] .. 'task:' .. id
  local lease = redis.call('HGET', key, 'lease')
  if lease and string.sub(lease, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HSET', key, 'status', 'queued')
    redis.call('HDEL', key, 'lease')
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[1], 0, id)
    n = n + 1
  end
end
return n
"""

# KEYS: task | ARGV: fraction. Only on a task that still exists (HSET would create a deleted one).
PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') == 'running' then redis.call('HSET', KEYS[1], 'progress', ARGV[1]) end
"""

# KEYS: task, audio, ids, queued, running | ARGV: id, key prefix
DELETE = """
local existed = redis.call('HEXISTS', KEYS[1], 'status')
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[2] .. 'owned:' .. owner, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1]); redis.call('ZREM', KEYS[4], ARGV[1]); redis.call('ZREM', KEYS[5], ARGV[1])
return existed
"""
