-- runtime.lua: write runtime limits — one or several descriptor paths in one
-- step, all or none — checking each path's version, appending one audit entry
-- per path and publishing the new revision.
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
-- ARGV[3]  m, the number of writes (at most 999); then 4 per write j, at
--          ARGV[4 + 4*(j-1)] ..:
--   field     the path's id
--   expected  "" (any), "+" (a record must exist), or the version the record
--             must have now ("0": there must be none)
--   record    the new record's members after version and updated_at_us, as
--             JSON without the opening brace ("" deletes the record)
--   audit     the audit entry's members after revision and at_us, as JSON
--             without braces
--
-- Reply: {1, revision, time_us} when everything was written, or {0, j,
-- version} when write j expected another version than the current one; then
-- nothing was written.

local function versionOf(record)
  if not record then return 0 end
  return tonumber(string.match(record, '^{"version":(%d+),')) or 0
end

local m = tonumber(ARGV[3])
local current = {}
for j = 1, m do
  local base = 4 + 4 * (j - 1)
  local cur = redis.call('HGET', KEYS[1], ARGV[base])
  current[j] = cur
  local expected = ARGV[base + 1]
  local have = versionOf(cur)
  if (expected == '+' and not cur) or (expected ~= '' and expected ~= '+' and tonumber(expected) ~= have) then
    return {0, j, have}
  end
end

local rev = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local head = string.format('"version":%d,"updated_at_us":%d,', rev, now)
for j = 1, m do
  local base = 4 + 4 * (j - 1)
  local field, body = ARGV[base], ARGV[base + 2]
  local new = 'null'
  if body == '' then
    redis.call('HDEL', KEYS[1], field)
  else
    new = '{' .. head .. body
    redis.call('HSET', KEYS[1], field, new)
  end
  local entry = string.format('{"revision":%d,"at_us":%d,', rev, now) .. ARGV[base + 3] ..
    ',"old":' .. (current[j] or 'null') .. ',"new":' .. new .. '}'
  redis.call('ZADD', KEYS[3], rev * 1000 + j, entry)
end
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PUBLISH', ARGV[1], rev)
return {1, rev, now}
