-- window.lua: bucketed sliding-window counters, checked and charged all-or-nothing,
-- with token reservations — for one decision, or for a batch of decisions in one
-- script call.
--
-- A limit L per window W is split into buckets of width w microseconds. At time
-- now the current bucket is k = floor(now / w); a counter counts buckets
-- k-n .. k, where n*w >= W, so no interval of length W ever admits more than L.
-- Each counter holds a count per bucket; units leased to a replica (op 4) are
-- its lease record in their bucket and count as part of it. How a counter is
-- stored (packed string or hash) is counters.lua's business.
-- A token counter keeps what is reserved and not yet reported in a second hash,
-- <key>:rsv, always a hash of one field per bucket (the reserved amounts are also
-- in the counter).
--
-- One script call carries m calls, each one decision, run one after another
-- exactly as m script calls made at the same Redis TIME would run. The hashes
-- they read are read once per script call and written back once at its end, so
-- a batch of decisions on one busy counter costs Redis one read and one write
-- of it, not one of each per decision.
--
-- ARGV[1]      m, the number of calls; then, for each call in order:
--   mode           1 = charge (charge every counter if none refuses), 0 = peek (write nothing)
--   record_ttl_ms  > 0 writes a reservation record of the op-1 counters
--   nc             counters in the call
--   then 7 ARGV per counter i:
--   bucket_us  bucket width w, microseconds (>= 1000)
--   n          previous buckets counted besides the current one (>= 1)
--   limit      L, units
--   cost       units; 0 checks that used < limit (inclusive: used <= limit) and charges nothing
--   flags      bit 0 (1): shadow (report only, never refuses the call);
--              bits 1-3 (2,4,8): op = floor(flags/2) % 8:
--                            0 check   charge cost when the call is allowed
--                            1 reserve as check, but a cost above the whole limit admits
--                                      while used < limit and takes what remains
--                            2 force   charge cost even past the limit; never refuses
--                            3 refund  give cost back, newest buckets first, never below 0
--                            4 lease   (charge mode only; never refuses; evaluated after
--                                      the call's earlier counters are applied)
--                                      from = 0: grant g = min(cost, floor(free / 2))
--                                      units, free = limit - used, into the current
--                                      bucket's record "<k>:<holder>"
--                                      from > 0: return: the holder spent cost units of
--                                      its lease in bucket from (at most k+1); keep
--                                      min(record, cost) (moved into "<from>"), give back
--                                      the rest, delete the record; nothing once from
--                                      left the window
--              bit 4 (16): inclusive, envoyproxy/ratelimit's rule that a limit is passed
--                          only once used > limit: a cost-0 check is ok while
--                          used <= limit; a force charges only while used <= limit (the
--                          call that takes the counter past its limit counts whole,
--                          later ones nothing until it is back at its limit)
--              bit 5 (32): ahead, for an op 4 grant: grant into bucket k+1, the one after
--                          the current bucket, g = min(cost, floor(free / 2)) with free
--                          = limit - what the window starting at bucket k+1's start
--                          holds now (buckets k-n+1 .. k+1), into the record
--                          "<k+1>:<holder>"
--   kind       token kind code written into the reservation record ("" for none);
--              for op 4 the lease holder: 1-32 characters of [0-9a-z]
--   from       for refund: > 0 gives back from this bucket only (nothing once it has left
--              the window) — undoing a charge exactly; 0 gives back newest buckets first;
--              for lease: see op 4
-- KEYS         for each call in order: the hash key of each of its nc counters,
--              then its reservation record key when record_ttl_ms > 0
--
-- Reply: an array of m replies, one per call, in order. A call that fails (say,
-- a key holding another type) gets an error reply; the other calls are not
-- affected. Otherwise its reply is a flat array of integers:
--   now_us, allowed (1/0), then per counter:
--   code (1 = ok, 2 = over), used (after charging, units), remaining (units),
--   reset_us (until everything counted has aged out), retry_us (0 when ok, and
--   for a force that is not inclusive),
--   amount: in charge mode what was charged (negative: refunded); in peek mode
--           what <key>:rsv holds in the window (reserved, not yet reported).
--   For op 4, retry_us is the time left in the current bucket: (k + 1) * w - now.
--
-- Units leased ahead into bucket k+1 count in every window that holds bucket
-- k+1, so while any are held, every check of a charge into bucket k also
-- checks the window that starts when bucket k ends (buckets k-n+1 .. k+1), and
-- used and remaining describe the fuller of the two windows (docs/leases.md,
-- "Leasing the next bucket").
--
-- Time is Redis TIME in integer microseconds. Lua numbers are doubles: every
-- value here is an integer below 2^53, so arithmetic is exact.
--
-- It runs after counters.lua (now, num, int, floor, max, min, bucket, entry, hash, find,
-- countAt, incr, add, del, count, held, counted, writeBack, replyOf).

-- lease runs op 4 on cached hash e for the counter whose arguments start at
-- ARGV[a], in current bucket k; ms is the expiry a charge sets; ahead grants
-- into bucket k+1. It returns the amount charged (a grant, >= 0) or given
-- back (a return, <= 0), and for a grant the bucket it went into.
local function lease(e, a, k, n, w, limit, ms, ahead)
  local cost = num[ARGV[a + 3]]
  local holder = ARGV[a + 5]
  local from = num[ARGV[a + 6]]
  if from > 0 then
    if from < k - n or from > k + 1 then return 0 end
    local x = find(e, from, holder)
    if x == nil or not countAt(e, x) then return 0 end
    local have = countAt(e, x)
    local keep = min(have, cost)
    if keep > 0 then incr(e, from, '', keep) end
    del(e, x)
    return keep - have
  end
  local used, _, stale, inNext, oldest = count(e, k - n, k)
  local b, free = k, limit - held(used, inNext, oldest)
  if ahead then
    b, free = k + 1, limit - (used - oldest + inNext)
    ms = max(ms, floor(((k + n + 2) * w - now + 999) / 1000)) -- when bucket k+1 leaves it
  end
  local g = min(cost, floor(free / 2))
  if g <= 0 then return 0 end
  incr(e, b, holder, g)
  if stale ~= nil then
    for _, j in ipairs(stale) do del(e, j) end
  end
  e.ttl = max(e.ttl or 0, ms)
  return g, b
end

-- decide runs one call: its keys follow KEYS[ko], its arguments start at ARGV[ao]
local function decide(ko, ao)
  local charge = ARGV[ao] == '1'
  local record_ttl = num[ARGV[ao + 1]]
  local nc = num[ARGV[ao + 2]]
  local reply = {now, 1}
  local refused = false
  -- per counter: amount to charge, current bucket, stale fields, op, whether
  -- bucket k+1 holds units leased ahead
  local amounts, ks, stales, ops, aheads = {}, {}, {}, {}, {}

  for i = 1, nc do
    local a = ao + 3 + 7 * (i - 1)
    local w = num[ARGV[a]]
    local n = num[ARGV[a + 1]]
    local limit = num[ARGV[a + 2]]
    local cost = num[ARGV[a + 3]]
    local flags = num[ARGV[a + 4]]
    local shadow = flags % 2 == 1
    local op = floor(flags / 2) % 8
    local inclusive = floor(flags / 16) % 2 == 1
    local k = bucket(w)
    local first = k - n

    local e = hash(KEYS[ko + i])
    local counted_used, newest, stale, ahead, oldest = count(e, first, k)
    -- what checks see: the fuller of this window and the next (held)
    local used = held(counted_used, ahead, oldest)
    if ahead > 0 then newest = k + 1 end

    local ok, amount = true, 0
    if op == 4 then
      -- a lease is evaluated in the charge phase, below
    elseif op == 2 then
      ok = used + cost <= limit
      if not inclusive or used <= limit then amount = cost end
    elseif op == 3 then
      local from = num[ARGV[a + 6]]
      if from > 0 then
        local have = 0
        if from >= first and from <= k then
          local x = find(e, from, '')
          if x ~= nil then have = countAt(e, x) or 0 end
        end
        amount = -min(cost, have)
      else
        amount = -min(cost, counted_used)
      end
    elseif op == 1 and cost > limit then
      ok = used < limit
      if ok then amount = limit - used end
    else
      if cost > 0 then ok = used + cost <= limit elseif inclusive then ok = used <= limit else ok = used < limit end
      if ok then amount = cost end
    end
    if not ok and op < 2 then
      amount = 0
      if not shadow then refused = true end
    end

    local reset = 0
    if newest ~= nil then reset = (newest + n + 1) * w - now end
    local retry = 0
    if op == 4 then retry = (k + 1) * w - now end
    if not ok and (op < 2 or (op == 2 and inclusive)) then
      -- walk the counted buckets oldest first until enough has aged out
      retry = reset
      -- units leased ahead stay counted while these age out: counting them
      -- already (used + ahead) can only make the wait longer, never too short
      local freed = 0
      for _, bc in ipairs(counted(e, first, k)) do
        freed = freed + bc[2]
        local left = counted_used + ahead - freed
        if (cost > 0 and left + cost <= limit) or (cost == 0 and (left < limit or (inclusive and left <= limit))) or (op == 1 and cost > limit and left < limit) then
          retry = (bc[1] + n + 1) * w - now
          break
        end
      end
    end

    local shown = 0
    if not charge and op ~= 4 and ARGV[a + 5] ~= '' then
      shown = count(entry(KEYS[ko + i] .. ':rsv', false), first, k)
    end

    amounts[i], ks[i], stales[i], ops[i], aheads[i] = amount, k, stale, op, ahead > 0
    local r = 3 + 6 * (i - 1)
    reply[r] = ok and 1 or 2
    reply[r + 1] = used
    reply[r + 2] = max(limit - used, 0)
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
    local a = ao + 3 + 7 * (i - 1)
    local key = KEYS[ko + i]
    local e = cached[key]
    local w = num[ARGV[a]]
    local n = num[ARGV[a + 1]]
    local limit = num[ARGV[a + 2]]
    local k = ks[i]
    local amount = amounts[i]
    local r = 3 + 6 * (i - 1)
    -- the expiry a write sets: when bucket k (or k+1, holding units leased
    -- ahead) leaves the window; never shortened within the script call
    local last = k
    if aheads[i] then last = k + 1 end
    local ms = max(floor(((last + n + 1) * w - now + 999) / 1000), 1)
    local after = nil -- what the counter holds after this op, when it recounts
    if ops[i] == 4 then
      local flags = num[ARGV[a + 4]]
      local into
      amount, into = lease(e, a, k, n, w, limit, ms, floor(flags / 32) % 2 == 1)
      local used, newest, _, ahead, oldest = count(e, k - n, k)
      after = held(used, ahead, oldest)
      if ahead > 0 then newest = k + 1 end
      if amount > 0 then newest = into end -- a grant's reset names its bucket (lua.ChargedBucket)
      if newest ~= nil then reply[r + 3] = (newest + n + 1) * w - now else reply[r + 3] = 0 end
      reply[r + 4] = (k + 1) * w - now
    elseif amount > 0 then
      incr(e, k, '', amount)
      local stale = stales[i]
      if stale ~= nil then
        for _, j in ipairs(stale) do del(e, j) end
      end
      e.ttl = max(e.ttl or 0, ms)
      reply[r + 3] = (k + n + 1) * w - now -- until this charge ages out (lua.ChargedBucket reads k from it)
    elseif amount < 0 and num[ARGV[a + 6]] > 0 then
      local from = num[ARGV[a + 6]]
      if incr(e, from, '', amount) <= 0 then del(e, find(e, from, '')) end
    elseif amount < 0 then
      local left = -amount
      local bs = counted(e, k - n, k)
      for j = #bs, 1, -1 do
        if left == 0 then break end
        local take = min(bs[j][2], left)
        if take == bs[j][2] then
          del(e, bs[j][3])
        elseif take > 0 then
          add(e, bs[j][3], -take)
        end
        left = left - take
      end
    end
    local used = after or reply[r + 1] + amount
    reply[r + 1] = used
    reply[r + 2] = max(limit - used, 0)
    reply[r + 5] = amount
    if ops[i] == 1 and record ~= nil then
      if amount > 0 then
        local rsv = key .. ':rsv'
        local re = cached[rsv]
        if re ~= nil then
          incr(re, k, '', amount)
          re.ttl = ms
        else
          redis.call('HINCRBY', rsv, int(k), int(amount))
          redis.call('PEXPIRE', rsv, int(ms))
        end
      end
      local m = record[2] + 1
      record[2] = m
      local x = #record
      record[x + 1], record[x + 2] = 'k' .. m, key
      record[x + 3], record[x + 4] = 'w' .. m, ARGV[a]
      record[x + 5], record[x + 6] = 'n' .. m, ARGV[a + 1]
      record[x + 7], record[x + 8] = 'l' .. m, ARGV[a + 2]
      record[x + 9], record[x + 10] = 'b' .. m, int(k)
      record[x + 11], record[x + 12] = 'a' .. m, int(amount)
      record[x + 13], record[x + 14] = 'u' .. m, ARGV[a + 5]
    end
  end
  if record ~= nil then
    record[2] = int(record[2])
    redis.call('HSET', KEYS[ko + nc + 1], unpack(record))
    redis.call('PEXPIRE', KEYS[ko + nc + 1], int(record_ttl))
  end
  return reply
end

local out = {}
local ko, ao = 0, 2
for call = 1, num[ARGV[1]] do
  local nc = num[ARGV[ao + 2]]
  out[call] = replyOf(pcall(decide, ko, ao))
  ko = ko + nc
  if num[ARGV[ao + 1]] > 0 then ko = ko + 1 end
  ao = ao + 3 + 7 * nc
end
writeBack()
return out
