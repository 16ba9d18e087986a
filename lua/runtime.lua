-- runtime.lua: write runtime limits — one or several descriptor paths in one
-- step, all or none — checking each path's version, adding one audit entry
-- per path changed and publishing the new revision.
--
-- The runtime limits are one hash: field = a path's id, value = its record, a
-- JSON object that always starts {"version":<n>,"updated_at_us":<µs>, ... .
-- The revision counts every write; a record's version is the revision that
-- wrote it, so a path deleted and written again never gets an old version
-- back. These keys are durable data, not counters: they have no TTL.
--
-- KEYS[1]  the hash of runtime limits
-- KEYS[2]  the revision counter
-- KEYS[3]  the audit trail: a sorted set of entries, scored revision*1000 + j
-- ARGV[1]  the channel the new revision is published on
-- ARGV[2]  how many audit entries to keep
-- ARGV[3]  m, the number of operations (at most 999); then 5 per operation
--          j, at ARGV[4 + 5*(j-1)] ..:
--   field     the path's id
--   expected  "" (any), "+" (a record must exist), or the version the record
--             must have now ("0": there must be none)
--   op        "p" put, "d" delete (nothing when there is no record), "c" only
--             check the version
--   record    for "p": the new record's members after version and
--             updated_at_us, as JSON without the opening brace
--   audit     for "p" and "d": the audit entry's members after revision and
--             at_us, as JSON without braces
--
-- Reply: {1, revision, time_us} when something was written; {2, revision,
-- time_us} when every check held but there was nothing to change (revision
-- is the current one); {0, j, version} when operation j expected another
-- version than the current one — then nothing was written.

local function versionOf(record)
  if not record then return 0 end
  return tonumber(string.match(record, '^{"version":(%d+),')) or 0
end

local m = tonumber(ARGV[3])
local current, changes = {}, 0
for j = 1, m do
  local base = 4 + 5 * (j - 1)
  local cur = redis.call('HGET', KEYS[1], ARGV[base])
  current[j] = cur
  local expected, op = ARGV[base + 1], ARGV[base + 2]
  local have = versionOf(cur)
  if (expected == '+' and not cur) or (expected ~= '' and expected ~= '+' and tonumber(expected) ~= have) then
    return {0, j, have}
  end
  if op == 'p' or (op == 'd' and cur) then changes = changes + 1 end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if changes == 0 then
  return {2, tonumber(redis.call('GET', KEYS[2]) or '0'), now}
end
local rev = redis.call('INCR', KEYS[2])
local head = string.format('"version":%d,"updated_at_us":%d,', rev, now)
for j = 1, m do
  local base = 4 + 5 * (j - 1)
  local field, op = ARGV[base], ARGV[base + 2]
  if op == 'p' or (op == 'd' and current[j]) then
    local new = 'null'
    if op == 'p' then
      new = '{' .. head .. ARGV[base + 3]
      redis.call('HSET', KEYS[1], field, new)
    else
      redis.call('HDEL', KEYS[1], field)
    end
    local entry = string.format('{"revision":%d,"at_us":%d,', rev, now) .. ARGV[base + 4] ..
      ',"old":' .. (current[j] or 'null') .. ',"new":' .. new .. '}'
    redis.call('ZADD', KEYS[3], rev * 1000 + j, entry)
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PUBLISH', ARGV[1], rev)
return {1, rev, now}
