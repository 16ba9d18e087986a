-- window.lua: bucketed sliding-window counters, checked and charged all-or-nothing.
--
-- A limit L per window W is split into buckets of width w microseconds. At time
-- now the current bucket is k = floor(now / w); a counter counts buckets
-- k-n .. k, where n*w >= W, so no interval of length W ever admits more than L.
-- Each counter is a hash: field = bucket index (decimal), value = count.
--
-- KEYS[i]   hash key of counter i
-- ARGV[1]   mode: 1 = charge (charge every counter if none refuses), 0 = peek (write nothing)
-- then 5 ARGV per counter i, at ARGV[2 + 5*(i-1)] ..:
--   bucket_us  bucket width w, microseconds (>= 1000)
--   n          previous buckets counted besides the current one (>= 1)
--   limit      L, units
--   cost       units to charge; 0 checks that used < limit and charges nothing
--   shadow     1 = report only, never refuses the call; 0 = enforce
--
-- Reply, a flat array of integers:
--   now_us, allowed (1/0), then per counter:
--   code (1 = ok, 2 = over), used (after charging, units), remaining (units),
--   reset_us (until everything counted has aged out), retry_us (0 when ok).
--
-- Time is Redis TIME in integer microseconds. Lua numbers are doubles: every
-- value here is an integer below 2^53, so arithmetic is exact.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local charge = ARGV[1] == '1'
local nc = #KEYS

local reply = {now, 1}
local refused = false
-- per counter: to charge (ok and cost > 0), current bucket, stale fields
local oks, ks, stales = {}, {}, {}

for i = 1, nc do
  local a = 2 + 5 * (i - 1)
  local w = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local limit = tonumber(ARGV[a + 2])
  local cost = tonumber(ARGV[a + 3])
  local k = math.floor(now / w)
  if k * w > now then k = k - 1 elseif (k + 1) * w <= now then k = k + 1 end
  local first = k - n

  local h = redis.call('HGETALL', KEYS[i])
  local used, newest = 0, nil
  local stale = nil
  for j = 1, #h, 2 do
    local b = tonumber(h[j])
    if b == nil or b < first then
      if stale == nil then stale = {} end
      stale[#stale + 1] = h[j]
    elseif b <= k then
      local c = tonumber(h[j + 1]) or 0
      used = used + c
      if c ~= 0 and (newest == nil or b > newest) then newest = b end
    end
  end

  local ok
  if cost > 0 then ok = used + cost <= limit else ok = used < limit end
  if not ok and ARGV[a + 4] ~= '1' then refused = true end

  local reset = 0
  if newest ~= nil then reset = (newest + n + 1) * w - now end
  local retry = 0
  if not ok then
    -- walk the counted buckets oldest first until enough has aged out
    retry = reset
    local pos, bs = {}, {}
    for j = 1, #h, 2 do
      local b = tonumber(h[j])
      if b ~= nil and b >= first and b <= k then
        pos[#pos + 1] = j
        bs[j] = b
      end
    end
    table.sort(pos, function(x, y) return bs[x] < bs[y] end)
    local freed = 0
    for p = 1, #pos do
      local b = bs[pos[p]]
      freed = freed + (tonumber(h[pos[p] + 1]) or 0)
      local left = used - freed
      if (cost > 0 and left + cost <= limit) or (cost == 0 and left < limit) then
        retry = (b + n + 1) * w - now
        break
      end
    end
  end

  oks[i] = ok and cost > 0
  ks[i] = k
  stales[i] = stale
  local r = 3 + 5 * (i - 1)
  reply[r] = ok and 1 or 2
  reply[r + 1] = used
  reply[r + 2] = limit - used
  reply[r + 3] = reset
  reply[r + 4] = retry
  if reply[r + 2] < 0 then reply[r + 2] = 0 end
end

if refused then
  reply[2] = 0
  return reply
end
if not charge then
  return reply
end

for i = 1, nc do
  if oks[i] then
    local a = 2 + 5 * (i - 1)
    local w = tonumber(ARGV[a])
    local n = tonumber(ARGV[a + 1])
    local limit = tonumber(ARGV[a + 2])
    local cost = ARGV[a + 3]
    local k = ks[i]
    redis.call('HINCRBY', KEYS[i], tostring(k), cost)
    local stale = stales[i]
    if stale ~= nil then
      for j = 1, #stale, 1000 do
        redis.call('HDEL', KEYS[i], unpack(stale, j, math.min(j + 999, #stale)))
      end
    end
    local ms = math.floor(((k + n + 1) * w - now + 999) / 1000)
    if ms < 1 then ms = 1 end
    redis.call('PEXPIRE', KEYS[i], tostring(ms))
    local r = 3 + 5 * (i - 1)
    local used = reply[r + 1] + tonumber(cost)
    reply[r + 1] = used
    reply[r + 2] = limit - used
    if reply[r + 2] < 0 then reply[r + 2] = 0 end
    reply[r + 3] = (k + n + 1) * w - now
  end
end
return reply
