-- counters.lua: what window.lua and report.lua share, put in front of each of
-- them when they are loaded (lua/scripts.go): Redis TIME as now, integer
-- rendering, bucket arithmetic, and the write-back cache of counters that
-- lets one script call run a batch of calls and read and write each counter
-- once.
--
-- A counter holds a count per bucket, and units of a bucket leased to a
-- replica (its lease record), in one of two layouts (below). Time is
-- Redis TIME in integer microseconds. Lua numbers are doubles: every value here
-- is an integer below 2^53, so arithmetic is exact.

-- The globals used on every call, as locals: a local is a register, a
-- global a table lookup each time.
local ARGV, KEYS, redis, tonumber, ipairs, pcall, type, error = ARGV, KEYS, redis, tonumber, ipairs, pcall, type, error
local floor, max, min = math.floor, math.max, math.min

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- num[s] is tonumber(s), converted once per script call: the calls merged
-- into one script call repeat the same arguments (widths, limits, costs,
-- flags) and bucket numbers, and a table lookup costs a fraction of Lua's
-- string-to-number conversion (strtod).
local num = setmetatable({}, {__index = function(cache, s)
  local v = tonumber(s)
  if v ~= nil then cache[s] = v end
  return v
end})

-- int renders an integer for redis.call: a bare Lua number would go through
-- "%.14g" and lose digits above 10^14.
local function int(x) return string.format('%d', x) end

-- current bucket of width w, exact even where now / w rounds
local function bucket(w)
  local k = floor(now / w)
  if k * w > now then k = k - 1 elseif (k + 1) * w <= now then k = k + 1 end
  return k
end

-- A counter is stored in one of two layouts; the scripts read both and write
-- each counter back in the layout this script was built for (lua/layout.go:
-- PACKED, set in front of this file), so flipping the layout converts a
-- counter at its next write:
--   packed: a string, the MessagePack array {1, b1, c1, h1, b2, c2, h2, ...}:
--           a format version, then per field its bucket number, its count and
--           its holder ('' for the bucket's own count, the replica's id for
--           units leased to it). One GET and one SET per script call, no
--           number parsed from text. Redis's cmsgpack; where a server has none
--           (miniredis, the embedded store), counters are hashes.
--   hash:   field "<k>" = count of bucket k, field "<k>:<holder>" = units of
--           bucket k leased to holder; anything else is stale.
-- A reservation's <key>:rsv is always a hash (report.lua HINCRBYs it).
local msgpack = rawget(_G, 'cmsgpack')
local packNew = PACKED and msgpack ~= nil

-- The write-back cache: cached[key] is the counter as read on first use, then
-- as the calls so far changed it: e.a is the packed layout's array itself,
-- {1, b1, c1, h1, ...}, so a packed counter is used as cmsgpack decoded it and
-- written back as it stands. Field i (from 0) is at x = 2 + 3*i: e.a[x] its
-- bucket number (false for a hash field that is not a bucket's), e.a[x+1] its
-- count (false once deleted), e.a[x+2] its holder ('' for the bucket's own
-- count; for a hash field that is not a bucket's, its name). e.n is the
-- number of fields, e.ttl the expiry in ms to set at write-back (or nil),
-- e.dirty true once any field changed, e.holes true once one was deleted,
-- e.packed whether it is written back packed, e.was the layout it was read in
-- ('packed', 'hash' or nil for a new key), and e.changed, for a counter
-- written back as a hash, the offsets of its changed fields. A key that is not
-- cached (a reservation's <key>:rsv that was not read, a record) is written
-- straight through.
local cached, order = {}, {}

-- readHash fills e from the fields of hash raw (HGETALL's reply)
local function readHash(e, raw)
  local a = e.a
  e.n = #raw / 2
  for j = 1, #raw, 2 do
    local x, f = 2 + 3 * (j - 1) / 2, raw[j]
    local b, h = num[f], ''
    if b == nil then
      local k, rest = string.match(f, '^(%d+):(.+)$')
      if k ~= nil then b, h = num[k], rest else b, h = false, f end
    end
    a[x], a[x + 1], a[x + 2] = b, tonumber(raw[j + 1]) or 0, h
  end
end

-- readPacked makes packed counter value raw of key the array of e
local function readPacked(e, key, raw)
  local a = msgpack ~= nil and msgpack.unpack(raw)
  if type(a) ~= 'table' or a[1] ~= 1 or (#a - 1) % 3 ~= 0 then
    error('WRONGTYPE ' .. key .. ' holds a string that is not a Sluice counter', 0)
  end
  e.a, e.n = a, (#a - 1) / 3
end

-- entry returns the cached counter of key, reading it on first use; packable
-- is false for a key that must stay a hash (<key>:rsv)
local function entry(key, packable)
  local e = cached[key]
  if e ~= nil then return e end
  e = {a = {1}, n = 0, packed = packable and packNew}
  if not e.packed then e.changed = {} end
  -- try the layout this script writes first: in a settled deployment the
  -- other one is never tried
  local first, second = 'HGETALL', 'GET'
  if e.packed then first, second = 'GET', 'HGETALL' end
  local raw = redis.pcall(first, key)
  if type(raw) == 'table' and raw.err ~= nil then
    raw = redis.pcall(second, key)
    if type(raw) == 'table' and raw.err ~= nil then error(raw.err, 0) end
    first = second
  end
  if first == 'GET' then
    if raw then
      readPacked(e, key, raw)
      e.was = 'packed'
    end
  elseif #raw > 0 then
    readHash(e, raw)
    e.was = 'hash'
  end
  cached[key] = e
  order[#order + 1] = key
  return e
end

-- hash returns the cached counter of key (see entry)
local function hash(key) return entry(key, true) end

-- find returns the offset x of bucket b's field of holder h ('' for its own
-- count) in cached counter e, or nil
local function find(e, b, h)
  local a = e.a
  for x = 2, 3 * e.n - 1, 3 do
    if a[x] == b and a[x + 2] == h then return x end
  end
  return nil
end

-- countAt is the count of the field at offset x of cached counter e (false
-- once deleted)
local function countAt(e, x) return e.a[x + 1] end

-- changed marks the field at offset x of cached counter e changed
local function changed(e, x)
  e.dirty = true
  if e.changed ~= nil then e.changed[x] = true end
end

-- incr adds delta to bucket b's field of holder h in cached counter e;
-- returns the new count
local function incr(e, b, h, delta)
  local a, x = e.a, find(e, b, h)
  if x == nil then
    x = 2 + 3 * e.n
    e.n = e.n + 1
    a[x], a[x + 1], a[x + 2] = b, 0, h
  end
  local v = (a[x + 1] or 0) + delta
  a[x + 1] = v
  changed(e, x)
  return v
end

-- add adds delta to the count of the field at offset x of cached counter e
local function add(e, x, delta)
  e.a[x + 1] = (e.a[x + 1] or 0) + delta
  changed(e, x)
end

-- del deletes the field at offset x of cached counter e
local function del(e, x)
  e.a[x + 1], e.holes = false, true
  changed(e, x)
end

-- fieldName is the hash field of the field at offset x of e
local function fieldName(e, x)
  local b, h = e.a[x], e.a[x + 2]
  if not b then return h end
  if h == '' then return int(b) end
  return int(b) .. ':' .. h
end

-- writePacked writes counter e to key as one packed string, or deletes the
-- key once no field is left
local function writePacked(key, e)
  local out, m = e.a, 3 * e.n + 1
  if e.holes or e.was == 'hash' then -- drop deleted and non-bucket fields
    out, m = {1}, 1
    local a = e.a
    for x = 2, 3 * e.n - 1, 3 do
      if a[x + 1] and a[x] then
        out[m + 1], out[m + 2], out[m + 3] = a[x], a[x + 1], a[x + 2]
        m = m + 3
      end
    end
  end
  if m == 1 then
    redis.call('DEL', key)
  elseif e.ttl ~= nil then
    redis.call('SET', key, msgpack.pack(out), 'PX', int(e.ttl))
  else
    redis.call('SET', key, msgpack.pack(out), 'KEEPTTL') -- SET replaces a hash too
  end
end

-- writeHash writes the changed fields of counter e to hash key; a counter
-- read packed is rewritten whole, keeping its expiry
local function writeHash(key, e)
  local sets, dels = nil, nil
  local whole, a = e.was == 'packed', e.a
  for x = 2, 3 * e.n - 1, 3 do
    if e.changed[x] or whole then
      if a[x + 1] ~= false then
        if sets == nil then sets = {} end
        sets[#sets + 1] = fieldName(e, x)
        sets[#sets + 1] = int(a[x + 1])
      elseif not whole then -- a whole rewrite deletes the key first
        if dels == nil then dels = {} end
        dels[#dels + 1] = fieldName(e, x)
      end
    end
  end
  local ttl = e.ttl
  if whole then
    if ttl == nil then
      ttl = redis.call('PTTL', key)
      if ttl <= 0 then ttl = nil end
    end
    redis.call('DEL', key)
  end
  if sets ~= nil then
    for j = 1, #sets, 2000 do
      redis.call('HSET', key, unpack(sets, j, min(j + 1999, #sets)))
    end
  end
  if dels ~= nil then
    for j = 1, #dels, 1000 do
      redis.call('HDEL', key, unpack(dels, j, min(j + 999, #dels)))
    end
  end
  if ttl ~= nil then redis.call('PEXPIRE', key, int(ttl)) end
end

-- writeBack writes every changed counter, in its layout (a call sets e.ttl
-- only along with a change)
local function writeBack()
  for _, key in ipairs(order) do
    local e = cached[key]
    if e.dirty then
      if e.packed then writePacked(key, e) else writeHash(key, e) end
    end
  end
end

-- sum of counter e's counts in buckets first .. k; also the offsets of its
-- stale fields, the newest nonzero bucket, what bucket k+1 holds (units
-- leased ahead, window.lua's op 4) and what bucket first holds
local function count(e, first, k)
  local used, newest, stale, ahead, oldest = 0, nil, nil, 0, 0
  local a = e.a
  for x = 2, 3 * e.n - 1, 3 do
    local c = a[x + 1]
    if c then
      local b = a[x]
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
  if ahead > 0 then return max(used, used - oldest + ahead) end
  return used
end

-- counted fields of counter e, oldest bucket first: {bucket, count, offset,
-- holder}. Within a bucket the lease records (by holder) come before the
-- bucket's own count, so that the order never depends on how the counter
-- happens to be laid out: a refund taken newest first (from the end) takes
-- from the bucket's own count before any lease.
local function counted(e, first, k)
  local out, a = {}, e.a
  for x = 2, 3 * e.n - 1, 3 do
    local b, c = a[x], a[x + 1]
    if c and b and b >= first and b <= k then out[#out + 1] = {b, c, x, a[x + 2]} end
  end
  table.sort(out, function(p, q)
    if p[1] ~= q[1] then return p[1] < q[1] end
    local pr, qr = p[4] ~= '', q[4] ~= '' -- a lease record
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
