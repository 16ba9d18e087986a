-- report.lua: reconcile token reservations with what the calls really used —
-- one reservation, or a batch of them in one script call.
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
-- One script call carries m reports, run one after another exactly as m
-- script calls at the same Redis TIME would run; the counter hashes they touch
-- are read and written once (counters.lua).
--
-- KEYS[i]      reservation record key of report i (the counter keys come from the record)
-- ARGV[1]      m, the number of reports; then 3 per report i, at ARGV[2 + 3*(i-1)] ..:
--   actual usage of kind 1 (total tokens), kind 2 (prompt), kind 3 (completion), units
--
-- Reply: an array of m replies, one per report, in order; a report that fails
-- gets an error reply, the others are not affected. Otherwise a flat array of
-- integers:
--   status (0 = no such reservation, 1 = reconciled now, 2 = reported before),
--   m (counters), then per counter: kind, limit, window_us, used, remaining.
--
-- It runs after counters.lua (now, num, int, floor, max, bucket, hash, incr, del,
-- find, count, writeBack, replyOf).

-- reconcile runs report i
local function reconcile(i)
  local recKey = KEYS[i]
  local rec = redis.call('HGETALL', recKey)
  if #rec == 0 then return {0, 0} end
  local f = {}
  for j = 1, #rec, 2 do f[rec[j]] = rec[j + 1] end
  local m = tonumber(f['m']) or 0

  if f['done'] == '1' then
    local out = {2, m}
    for v in string.gmatch(f['ans'] or '', '[^,]+') do out[#out + 1] = tonumber(v) end
    return out
  end

  local out = {1, m}
  for j = 1, m do
    local key = f['k' .. j]
    local w = num[f['w' .. j]]
    local n = num[f['n' .. j]]
    local limit = num[f['l' .. j]]
    local b = num[f['b' .. j]]
    local a = tonumber(f['a' .. j])
    local kind = num[f['u' .. j]] or 0
    local k = bucket(w)
    local first = k - n
    local e = hash(key)

    if a > 0 and b >= first then
      -- a bucket emptied (or given back already, by a refund) is deleted, never
      -- left at 0: a key the refund deleted must not come back without a TTL
      if incr(e, b, '', -a) <= 0 then del(e, find(e, b, '')) end
      local rsv = key .. ':rsv'
      local re = cached[rsv]
      if re ~= nil then
        if incr(re, b, '', -a) <= 0 then del(re, find(re, b, '')) end
      elseif redis.call('HINCRBY', rsv, int(b), int(-a)) <= 0 then
        redis.call('HDEL', rsv, int(b))
      end
    end
    local actual = 0
    if kind >= 1 and kind <= 3 then actual = tonumber(ARGV[1 + 3 * (i - 1) + kind]) or 0 end
    if actual > 0 then
      incr(e, k, '', actual)
      -- keep the key at least until this charge leaves the window
      local ms = max(floor(((k + n + 1) * w - now + 999) / 1000), 1)
      local ttl = e.ttl
      if ttl == nil then ttl = redis.call('PTTL', key) end
      if ttl < ms then e.ttl = ms end
    end

    local used = count(e, first, k)
    local x = #out
    out[x + 1], out[x + 2], out[x + 3] = kind, limit, n * w
    out[x + 4], out[x + 5] = used, max(limit - used, 0)
  end

  local ans = {}
  for j = 3, #out do ans[#ans + 1] = int(out[j]) end
  redis.call('HSET', recKey, 'done', '1', 'ans', table.concat(ans, ','))
  return out
end

local out = {}
for i = 1, tonumber(ARGV[1]) do
  out[i] = replyOf(pcall(reconcile, i))
end
writeBack()
return out
