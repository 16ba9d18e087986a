-- counters.lua: what window.lua and report.lua share, put in front of each of
-- them when they are loaded (lua/scripts.go): Redis TIME as now, integer
-- rendering, bucket arithmetic, and the write-back cache of counter hashes that
-- lets one script call run a batch of calls and read and write each counter
-- hash once.
--
-- A counter is a hash: field = bucket index (decimal), value = count; a field
-- "<bucket>:<holder>" holds units of that bucket leased to a replica. Time is
-- Redis TIME in integer microseconds. Lua numbers are doubles: every value here
-- is an integer below 2^53, so arithmetic is exact.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- int renders an integer for redis.call: a bare Lua number would go through
-- "%.14g" and lose digits above 10^14.
local function int(x) return string.format('%d', x) end

-- current bucket of width w, exact even where now / w rounds
local function bucket(w)
  local k = math.floor(now / w)
  if k * w > now then k = k - 1 elseif (k + 1) * w <= now then k = k + 1 end
  return k
end

-- The write-back cache: cached[key] is hash key as read on first use, then as
-- the calls so far changed it. It keeps its fields in one array, four slots
-- per field i at x = 4*(i-1): e[x+1] the field, e[x+2] its bucket number (false
-- for a field that is not one), e[x+3] its count (false once deleted), e[x+4]
-- true once changed; e.n is the number of fields, e.ttl the expiry in ms to
-- set at write-back (or nil). One table per hash keeps the garbage, and so
-- Redis's Lua GC, small. A key that is not cached (a reservation's <key>:rsv,
-- a record) is written straight through.
local cached, order = {}, {}

-- bucketOf is the bucket number of a counter hash field: "<k>", or a lease
-- record "<k>:<holder>" (units leased to holder in bucket k, counted as part of
-- bucket k; see window.lua's op 4); false for any other field.
local function bucketOf(f)
  local b = tonumber(f)
  if b ~= nil then return b end
  local k = string.match(f, '^(%d+):')
  if k ~= nil then return tonumber(k) end
  return false
end

local function hash(key)
  local e = cached[key]
  if e == nil then
    local raw = redis.call('HGETALL', key)
    e = {n = #raw / 2}
    for j = 1, #raw, 2 do
      local x = 2 * (j - 1)
      e[x + 1], e[x + 2], e[x + 3], e[x + 4] = raw[j], bucketOf(raw[j]), tonumber(raw[j + 1]) or 0, false
    end
    cached[key] = e
    order[#order + 1] = key
  end
  return e
end

-- find returns the slot offset x of field f in cached hash e, or nil
local function find(e, f)
  for x = 0, 4 * (e.n - 1), 4 do
    if e[x + 1] == f then return x end
  end
  return nil
end

-- incr adds delta to field f (bucket b) of cached hash e; returns the new count
local function incr(e, f, b, delta)
  local x = find(e, f)
  if x == nil then
    x = 4 * e.n
    e.n = e.n + 1
    e[x + 1], e[x + 2], e[x + 3] = f, b, 0
  end
  local v = (e[x + 3] or 0) + delta
  e[x + 3], e[x + 4] = v, true
  return v
end

-- add adds delta to the count of the field at slot offset x of cached hash e
local function add(e, x, delta)
  e[x + 3], e[x + 4] = (e[x + 3] or 0) + delta, true
end

-- del deletes the field at slot offset x of cached hash e
local function del(e, x)
  e[x + 3], e[x + 4] = false, true
end

-- writeBack writes every changed hash: changed fields, deleted fields, expiry
local function writeBack()
  for _, key in ipairs(order) do
    local e = cached[key]
    local sets, dels = nil, nil
    for x = 0, 4 * (e.n - 1), 4 do
      if e[x + 4] then
        if e[x + 3] == false then
          if dels == nil then dels = {} end
          dels[#dels + 1] = e[x + 1]
        else
          if sets == nil then sets = {} end
          sets[#sets + 1] = e[x + 1]
          sets[#sets + 1] = int(e[x + 3])
        end
      end
    end
    if sets ~= nil then
      for j = 1, #sets, 2000 do
        redis.call('HSET', key, unpack(sets, j, math.min(j + 1999, #sets)))
      end
    end
    if dels ~= nil then
      for j = 1, #dels, 1000 do
        redis.call('HDEL', key, unpack(dels, j, math.min(j + 999, #dels)))
      end
    end
    if e.ttl ~= nil then redis.call('PEXPIRE', key, int(e.ttl)) end
  end
end

-- sum of hash e's counts in buckets first .. k; also the slot offsets of its
-- stale fields, the newest nonzero bucket, what bucket k+1 holds (units
-- leased ahead, window.lua's op 4) and what bucket first holds
local function count(e, first, k)
  local used, newest, stale, ahead, oldest = 0, nil, nil, 0, 0
  for x = 0, 4 * (e.n - 1), 4 do
    local c = e[x + 3]
    if c then
      local b = e[x + 2]
      if not b or b < first then
        if stale == nil then stale = {} end
        stale[#stale + 1] = x
      elseif b <= k then
        used = used + c
        if b == first then oldest = oldest + c end
        if c ~= 0 and (newest == nil or b > newest) then newest = b end
      elseif b == k + 1 then
        ahead = ahead + c
      end
    end
  end
  return used, newest, stale, ahead, oldest
end

-- held is what a charge into the current bucket k must fit under: the
-- window's count used, or — when units were leased ahead into bucket k+1 —
-- the count of the window that starts when bucket k ends (it drops the
-- oldest bucket and adds bucket k+1), if that is more: a charge into k
-- counts in both.
local function held(used, ahead, oldest)
  if ahead > 0 then return math.max(used, used - oldest + ahead) end
  return used
end

-- counted fields of hash e, oldest bucket first: {bucket, count, slot
-- offset}. Within a bucket the lease records ("<k>:<holder>", by name) come
-- before the bucket's own field "<k>", so that the order never depends on how
-- the hash happens to be laid out: a refund taken newest first (from the end)
-- takes from "<k>" before any lease.
local function counted(e, first, k)
  local out = {}
  for x = 0, 4 * (e.n - 1), 4 do
    local b, c = e[x + 2], e[x + 3]
    if c and b and b >= first and b <= k then out[#out + 1] = {b, c, x, e[x + 1]} end
  end
  table.sort(out, function(p, q)
    if p[1] ~= q[1] then return p[1] < q[1] end
    local pr, qr = #p[4] > #int(p[1]), #q[4] > #int(q[1]) -- a record's name is longer
    if pr ~= qr then return pr end
    return p[4] < q[4]
  end)
  return out
end

-- replyOf turns what pcall returned for one call of a batch into that call's
-- element of the reply: its own reply, or its error as an error reply.
local function replyOf(ok, r)
  if ok then return r end
  if type(r) == 'table' and r.err ~= nil then return r end
  return redis.error_reply(tostring(r))
end
