package redisstore

import "github.com/redis/go-redis/v9"

// putSubscription upserts a subscription, keeping the first created_at and
// the latest last_activity_at.
// KEYS: sub hash, index zset. ARGV: id, json, created µs, activity µs.
// Returns {created 0|1, created µs, activity µs}.
var putSubscriptionScript = redis.NewScript(`
local c = redis.call('HGET', KEYS[1], 'c')
local created = 0
if not c then c = ARGV[3]; created = 1 end
local a = redis.call('HGET', KEYS[1], 'a')
if (not a) or tonumber(ARGV[4]) > tonumber(a) then a = ARGV[4] end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'c', c, 'a', a)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return {created, c, a}
`)

// putSubscriptions is putSubscription for a batch, record after record.
// KEYS: one sub hash per record, then the index zset. ARGV: per record id,
// json, created µs, activity µs. Returns {created, created µs, activity µs}
// per record, flattened.
var putSubscriptionsScript = redis.NewScript(`
local idx = KEYS[#KEYS]
local out = {}
for i = 1, #KEYS - 1 do
  local j = (i - 1) * 4
  local c = redis.call('HGET', KEYS[i], 'c')
  local created = 0
  if not c then c = ARGV[j + 3]; created = 1 end
  local a = redis.call('HGET', KEYS[i], 'a')
  if (not a) or tonumber(ARGV[j + 4]) > tonumber(a) then a = ARGV[j + 4] end
  redis.call('HSET', KEYS[i], 'd', ARGV[j + 2], 'c', c, 'a', a)
  redis.call('ZADD', idx, 0, ARGV[j + 1])
  out[#out + 1] = created
  out[#out + 1] = c
  out[#out + 1] = a
end
return out
`)

// touchSubscription moves last_activity_at forward.
// KEYS: sub hash. ARGV: activity µs. Returns 0 when the subscription is absent.
var touchSubscriptionScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local a = redis.call('HGET', KEYS[1], 'a')
if (not a) or tonumber(ARGV[1]) > tonumber(a) then redis.call('HSET', KEYS[1], 'a', ARGV[1]) end
return 1
`)

// deleteSubscription removes a subscription, its cursors and its index entry.
// KEYS: sub hash, cursor hash, index zset. ARGV: id. Returns 0 when absent.
var deleteSubscriptionScript = redis.NewScript(`
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

// putCursor merges a cursor update exactly like store.Cursor.Advance.
// KEYS: cursor hash, sub hash. ARGV: display_id, message id, status, updated_at.
// Returns the merged "<id>|<status>|<updated_at>", or nil when the
// subscription is absent.
var putCursorScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local m, s, u = '0', '', ''
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  local vm, vs, vu = string.match(v, '^([^|]*)|([^|]*)|(.*)$')
  if vm and tonumber(vm) then m, s, u = vm, vs, vu end
end
if tonumber(ARGV[2]) > tonumber(m) then m = ARGV[2] end
local newer
if ARGV[3] == '' and ARGV[4] == '' then newer = false
elseif ARGV[4] == '' then newer = (u == '')
elseif u == '' then newer = true
else newer = tonumber(ARGV[4]) >= tonumber(u) end
if newer then
  if ARGV[3] ~= '' then s = ARGV[3] end
  if ARGV[4] ~= '' then u = ARGV[4] end
end
local nv = m .. '|' .. s .. '|' .. u
redis.call('HSET', KEYS[1], ARGV[1], nv)
return nv
`)

// reserveIdempotency reserves a free key.
// KEYS: idem key. ARGV: ttl ms. Returns "" when reserved, else the stored value.
var reserveIdempotencyScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], 'p', 'PX', ARGV[1])
return ''
`)

// releaseIdempotency deletes an in-progress key. KEYS: idem key.
var releaseIdempotencyScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'p' then return redis.call('DEL', KEYS[1]) end
return 0
`)

// acquireLease takes a free lease or renews the caller's own. A new grant
// gets the next fencing token of the lease (kept in a hash that never
// expires, so tokens keep growing) and records when it was made.
// KEYS: lease key, fences hash, since hash. ARGV: holder, ttl ms, name,
// now ms. Returns {1 when held by holder, holder, token, since ms}.
var acquireLeaseScript = redis.NewScript(`
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then
  return {0, h, tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or 0), tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or 0)}
end
if h then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, h, tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or 0), tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or 0)}
end
local t = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return {1, ARGV[1], t, tonumber(ARGV[4])}
`)

// renewLease extends a lease still held by holder under token
// (compare-and-set). KEYS: lease key, fences hash. ARGV: holder, ttl ms,
// name, token. Returns 1 when renewed.
var renewLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[4] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseHeld deletes a lease still held by holder under token.
// KEYS: lease key, fences hash. ARGV: holder, name, token. Returns 1 when
// deleted.
var releaseHeldScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// releaseLease deletes a lease held by holder (compare-and-delete).
// KEYS: lease key. ARGV: holder. Returns 1 when deleted.
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// pruneMember drops a member name whose heartbeat key has expired, unless a
// heartbeat renewed it meanwhile. KEYS: members set, member key. ARGV: member.
var pruneMemberScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.call('SREM', KEYS[1], ARGV[1]) end
return 0
`)
