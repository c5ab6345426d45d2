-- kvload.lua: a put-heavy job for throughput: every worker writes N keys of its own (16-byte
-- keys, 32-byte values), flushes, then checks it reads its own writes back.
--   psl run examples/kvload.lua --workers 2 --args 200000

function main(args)
  local me, n = psl.worker()
  local count = tonumber(args) or 100000
  local prefix = string.format("w%03d/", me)
  local value = string.rep("v", 32)
  for i = 1, count do
    psl.put(prefix .. string.format("%011d", i), value)
  end
  psl.flush()
  assert(psl.get(prefix .. string.format("%011d", count)) == value)
  return { worker = me, puts = count }
end
