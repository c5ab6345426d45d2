-- pi.lua: parallel Monte Carlo estimate of pi, reduced through the shared state.
-- Every worker throws its own darts, publishes its counts under its own keys (no two workers
-- ever write the same key, so nothing is lost to last-writer-wins), waits at a barrier until
-- every worker has published, and worker 0 adds everything up.
--   psl run examples/pi.lua --workers 4            (--args N: darts per worker, default 200000)

function main(args)
  local me, n = psl.worker()
  local darts = tonumber(args) or 200000
  math.randomseed(1234 + me)
  local hits = 0
  for _ = 1, darts do
    local x, y = math.random(), math.random()
    if x * x + y * y <= 1.0 then hits = hits + 1 end
  end
  psl.put("pi/hits/" .. me, hits)
  psl.put("pi/darts/" .. me, darts)
  psl.barrier("counted")
  if me ~= 0 then
    return { worker = me, hits = hits, darts = darts }
  end
  local total_hits, total_darts = 0, 0
  for w = 0, n - 1 do
    total_hits = total_hits + tonumber(psl.get("pi/hits/" .. w))
    total_darts = total_darts + tonumber(psl.get("pi/darts/" .. w))
  end
  local pi = 4 * total_hits / total_darts
  psl.log(string.format("pi ~ %.6f from %d darts on %d workers", pi, total_darts, n))
  return { pi = pi, darts = total_darts, workers = n }
end
