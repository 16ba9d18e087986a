package redistest

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// unpackCounter lists the fields of a packed counter as HGETALL would list
// them in the hash layout; any other string as the one field "(string)".
const unpackCounter = `local v = redis.call('GET', KEYS[1])
local mp = rawget(_G, 'cmsgpack')
local t = mp and mp.unpack(v)
if type(t) ~= 'table' or t[1] ~= 1 then return {'(string)', v} end
local out = {}
for i = 2, #t, 3 do
  local name = string.format('%d', t[i])
  if t[i + 2] ~= '' then name = name .. ':' .. t[i + 2] end
  out[#out + 1] = name
  out[#out + 1] = string.format('%d', t[i + 1])
end
return out`

// CounterFields reads the Sluice counter at key in whichever layout holds it
// (lua/counters.lua: a hash, or a packed string) and returns its fields under
// the hash layout's names — "<bucket>" and "<bucket>:<holder>" = count — and
// the key's Redis type ("hash", "string" or "none"). A key holding any other
// hash is listed as HGETALL lists it; any other string as the one field
// "(string)".
func CounterFields(ctx context.Context, rdb redis.Cmdable, key string) (fields map[string]string, kind string, err error) {
	if kind, err = rdb.Type(ctx, key).Result(); err != nil {
		return nil, "", err
	}
	fields = map[string]string{}
	switch kind {
	case "hash":
		fields, err = rdb.HGetAll(ctx, key).Result()
	case "string":
		var flat []string
		flat, err = rdb.Eval(ctx, unpackCounter, []string{key}).StringSlice()
		for i := 0; i+1 < len(flat); i += 2 {
			fields[flat[i]] = flat[i+1]
		}
	}
	return fields, kind, err
}
