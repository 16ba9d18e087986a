-- report.lua: reconcile a token reservation with what the call really used.
--
-- The record (written by window.lua) lists each reserved counter: key k<j>,
-- bucket width w<j> (µs), previous buckets n<j>, limit l<j>, the bucket b<j>
-- the reservation was charged to, the amount a<j>, and the token kind u<j>.
-- For each counter this removes the reservation from its bucket, if that
-- bucket is still inside the window (from the counter and from <key>:rsv),
-- then charges the actual amount of its kind in the current bucket, even past
-- the limit. The answer is stored in the record, so a second report changes
-- nothing and gets the first answer again.
--
-- KEYS[1]   reservation record key (the counter keys come from the record)
-- ARGV[1]   actual usage of kind 1, units (total tokens)
-- ARGV[2]   actual usage of kind 2, units (prompt tokens)
-- ARGV[3]   actual usage of kind 3, units (completion tokens)
--
-- Reply, a flat array of integers:
--   status (0 = no such reservation, 1 = reconciled now, 2 = reported before),
--   m (counters), then per counter: kind, limit, window_us, used, remaining.
--
-- Time is Redis TIME in integer microseconds; values stay below 2^53.

local function int(x) return string.format('%d', x) end

local rec = redis.call('HGETALL', KEYS[1])
if #rec == 0 then return {0, 0} end
local f = {}
for j = 1, #rec, 2 do f[rec[j]] = rec[j + 1] end
local m = tonumber(f['m']) or 0

if f['done'] == '1' then
  local out = {2, m}
  for v in string.gmatch(f['ans'] or '', '[^,]+') do out[#out + 1] = tonumber(v) end
  return out
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {1, m}
for j = 1, m do
  local key = f['k' .. j]
  local w = tonumber(f['w' .. j])
  local n = tonumber(f['n' .. j])
  local limit = tonumber(f['l' .. j])
  local b = tonumber(f['b' .. j])
  local a = tonumber(f['a' .. j])
  local kind = tonumber(f['u' .. j]) or 0
  local k = math.floor(now / w)
  if k * w > now then k = k - 1 elseif (k + 1) * w <= now then k = k + 1 end
  local first = k - n

  if a > 0 and b >= first then
    local v = redis.call('HINCRBY', key, int(b), int(-a))
    if v < 0 then redis.call('HINCRBY', key, int(b), int(-v)) end
    local rv = redis.call('HINCRBY', key .. ':rsv', int(b), int(-a))
    if rv <= 0 then redis.call('HDEL', key .. ':rsv', int(b)) end
  end
  local actual = tonumber(ARGV[kind]) or 0
  if actual > 0 then
    redis.call('HINCRBY', key, int(k), int(actual))
    local ms = math.max(math.floor(((k + n + 1) * w - now + 999) / 1000), 1)
    if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, int(ms)) end
  end

  local h = redis.call('HGETALL', key)
  local used = 0
  for i = 1, #h, 2 do
    local bi = tonumber(h[i])
    if bi ~= nil and bi >= first and bi <= k then used = used + (tonumber(h[i + 1]) or 0) end
  end
  local e = #out
  out[e + 1], out[e + 2], out[e + 3] = kind, limit, n * w
  out[e + 4], out[e + 5] = used, math.max(limit - used, 0)
end

local ans = {}
for i = 3, #out do ans[#ans + 1] = int(out[i]) end
redis.call('HSET', KEYS[1], 'done', '1', 'ans', table.concat(ans, ','))
return out
