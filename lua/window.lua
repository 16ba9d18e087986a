-- window.lua: bucketed sliding-window counters, checked and charged all-or-nothing,
-- with token reservations.
--
-- A limit L per window W is split into buckets of width w microseconds. At time
-- now the current bucket is k = floor(now / w); a counter counts buckets
-- k-n .. k, where n*w >= W, so no interval of length W ever admits more than L.
-- Each counter is a hash: field = bucket index (decimal), value = count.
-- A token counter keeps what is reserved and not yet reported in a second hash,
-- <key>:rsv, laid out the same way (the reserved amounts are also in the counter).
--
-- KEYS[i]      hash key of counter i, i = 1 .. nc
-- KEYS[nc+1]   reservation record key, only when record_ttl_ms > 0
-- ARGV[1]      mode: 1 = charge (charge every counter if none refuses), 0 = peek (write nothing)
-- ARGV[2]      record_ttl_ms: > 0 writes a reservation record of the op-1 counters
-- then 7 ARGV per counter i, at ARGV[3 + 7*(i-1)] ..:
--   bucket_us  bucket width w, microseconds (>= 1000)
--   n          previous buckets counted besides the current one (>= 1)
--   limit      L, units
--   cost       units; 0 checks that used < limit and charges nothing
--   flags      bit 0: shadow (report only, never refuses the call);
--              bits 1-2: op: 0 check  charge cost when the call is allowed
--                            1 reserve as check, but a cost above the whole limit admits
--                                      while used < limit and takes what remains
--                            2 force   charge cost even past the limit; never refuses
--                            3 refund  give cost back, newest buckets first, never below 0
--   kind       token kind code written into the reservation record ("" for none)
--   from       for refund: > 0 gives back from this bucket only (nothing once it has left
--              the window) — undoing a charge exactly; 0 gives back newest buckets first
--
-- Reply, a flat array of integers:
--   now_us, allowed (1/0), then per counter:
--   code (1 = ok, 2 = over), used (after charging, units), remaining (units),
--   reset_us (until everything counted has aged out), retry_us (0 when ok),
--   amount: in charge mode what was charged (negative: refunded); in peek mode
--           what <key>:rsv holds in the window (reserved, not yet reported).
--
-- Time is Redis TIME in integer microseconds. Lua numbers are doubles: every
-- value here is an integer below 2^53, so arithmetic is exact.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local charge = ARGV[1] == '1'
local record_ttl = tonumber(ARGV[2])
local nc = (#ARGV - 2) / 7

-- int renders an integer for redis.call: a bare Lua number would go through
-- "%.14g" and lose digits above 10^14.
local function int(x) return string.format('%d', x) end

-- current bucket of width w, exact even where now / w rounds
local function bucket(w)
  local k = math.floor(now / w)
  if k * w > now then k = k - 1 elseif (k + 1) * w <= now then k = k + 1 end
  return k
end

-- sum of a hash's fields in buckets first .. k; also the stale fields and the
-- newest nonzero bucket
local function count(h, first, k)
  local used, newest, stale = 0, nil, nil
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
  return used, newest, stale
end

-- counted buckets of h, sorted oldest first: {bucket, count} pairs
local function counted(h, first, k)
  local out = {}
  for j = 1, #h, 2 do
    local b = tonumber(h[j])
    if b ~= nil and b >= first and b <= k then
      out[#out + 1] = {b, tonumber(h[j + 1]) or 0}
    end
  end
  table.sort(out, function(x, y) return x[1] < y[1] end)
  return out
end

local reply = {now, 1}
local refused = false
-- per counter: amount to charge, current bucket, stale fields, hash, op
local amounts, ks, stales, hs, ops = {}, {}, {}, {}, {}

for i = 1, nc do
  local a = 3 + 7 * (i - 1)
  local w = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local limit = tonumber(ARGV[a + 2])
  local cost = tonumber(ARGV[a + 3])
  local flags = tonumber(ARGV[a + 4])
  local shadow = flags % 2 == 1
  local op = math.floor(flags / 2)
  local k = bucket(w)
  local first = k - n

  local h = redis.call('HGETALL', KEYS[i])
  local used, newest, stale = count(h, first, k)

  local ok, amount = true, 0
  if op == 2 then
    amount = cost
    ok = used + cost <= limit
  elseif op == 3 then
    local from = tonumber(ARGV[a + 6])
    if from > 0 then
      local have = 0
      if from >= first and from <= k then have = tonumber(redis.call('HGET', KEYS[i], int(from))) or 0 end
      amount = -math.min(cost, have)
    else
      amount = -math.min(cost, used)
    end
  elseif op == 1 and cost > limit then
    ok = used < limit
    if ok then amount = limit - used end
  else
    if cost > 0 then ok = used + cost <= limit else ok = used < limit end
    if ok then amount = cost end
  end
  if not ok and op < 2 then
    amount = 0
    if not shadow then refused = true end
  end

  local reset = 0
  if newest ~= nil then reset = (newest + n + 1) * w - now end
  local retry = 0
  if not ok and op < 2 then
    -- walk the counted buckets oldest first until enough has aged out
    retry = reset
    local freed = 0
    for _, bc in ipairs(counted(h, first, k)) do
      freed = freed + bc[2]
      local left = used - freed
      if (cost > 0 and left + cost <= limit) or (cost == 0 and left < limit) or (op == 1 and cost > limit and left < limit) then
        retry = (bc[1] + n + 1) * w - now
        break
      end
    end
  end

  local shown = 0
  if not charge and ARGV[a + 5] ~= '' then
    shown = count(redis.call('HGETALL', KEYS[i] .. ':rsv'), first, k)
  end

  amounts[i], ks[i], stales[i], hs[i], ops[i] = amount, k, stale, h, op
  local r = 3 + 6 * (i - 1)
  reply[r] = ok and 1 or 2
  reply[r + 1] = used
  reply[r + 2] = math.max(limit - used, 0)
  reply[r + 3] = reset
  reply[r + 4] = retry
  reply[r + 5] = shown
end

if refused then
  reply[2] = 0
  return reply
end
if not charge then
  return reply
end

local record = nil
if record_ttl > 0 then record = {'m', 0} end

for i = 1, nc do
  local a = 3 + 7 * (i - 1)
  local w = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local limit = tonumber(ARGV[a + 2])
  local k = ks[i]
  local amount = amounts[i]
  local r = 3 + 6 * (i - 1)
  local ms = math.max(math.floor(((k + n + 1) * w - now + 999) / 1000), 1)
  if amount > 0 then
    redis.call('HINCRBY', KEYS[i], int(k), int(amount))
    local stale = stales[i]
    if stale ~= nil then
      for j = 1, #stale, 1000 do
        redis.call('HDEL', KEYS[i], unpack(stale, j, math.min(j + 999, #stale)))
      end
    end
    redis.call('PEXPIRE', KEYS[i], int(ms))
    reply[r + 3] = (k + n + 1) * w - now
  elseif amount < 0 and tonumber(ARGV[a + 6]) > 0 then
    local from = int(tonumber(ARGV[a + 6]))
    if redis.call('HINCRBY', KEYS[i], from, int(amount)) <= 0 then redis.call('HDEL', KEYS[i], from) end
  elseif amount < 0 then
    local left = -amount
    local bs = counted(hs[i], k - n, k)
    for j = #bs, 1, -1 do
      if left == 0 then break end
      local take = math.min(bs[j][2], left)
      if take == bs[j][2] then
        redis.call('HDEL', KEYS[i], int(bs[j][1]))
      elseif take > 0 then
        redis.call('HINCRBY', KEYS[i], int(bs[j][1]), int(-take))
      end
      left = left - take
    end
  end
  local used = reply[r + 1] + amount
  reply[r + 1] = used
  reply[r + 2] = math.max(limit - used, 0)
  reply[r + 5] = amount
  if ops[i] == 1 and record ~= nil then
    if amount > 0 then
      redis.call('HINCRBY', KEYS[i] .. ':rsv', int(k), int(amount))
      redis.call('PEXPIRE', KEYS[i] .. ':rsv', int(ms))
    end
    local m = record[2] + 1
    record[2] = m
    local e = #record
    record[e + 1], record[e + 2] = 'k' .. m, KEYS[i]
    record[e + 3], record[e + 4] = 'w' .. m, ARGV[a]
    record[e + 5], record[e + 6] = 'n' .. m, ARGV[a + 1]
    record[e + 7], record[e + 8] = 'l' .. m, ARGV[a + 2]
    record[e + 9], record[e + 10] = 'b' .. m, int(k)
    record[e + 11], record[e + 12] = 'a' .. m, int(amount)
    record[e + 13], record[e + 14] = 'u' .. m, ARGV[a + 5]
  end
end
if record ~= nil then
  record[2] = int(record[2])
  redis.call('HSET', KEYS[nc + 1], unpack(record))
  redis.call('PEXPIRE', KEYS[nc + 1], int(record_ttl))
end
return reply
