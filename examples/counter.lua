-- counter.lua: many workers increment one shared counter, honestly.
-- SCL is eventually consistent with last-writer-wins per key: a read-modify-write of one shared
-- key by several workers at once loses increments (two workers read 41, both write 42). The
-- exact pattern is one key per worker and a sum at the end: every key has a single writer, so
-- nothing is lost, and the sum is exact once every worker's writes have arrived (the barrier).
--   psl run examples/counter.lua --workers 4        (--args N: increments per worker, default 200)

function main(args)
  local me, n = psl.worker()
  local times = tonumber(args) or 200
  for i = 1, times do
    -- the racy way: read, add one, write back the shared key
    local shared = tonumber(psl.get("counter/shared") or "0")
    psl.put("counter/shared", shared + 1)
    -- the exact way: this worker's own key
    psl.put("counter/worker/" .. me, i)
    if i % 50 == 0 then psl.sleep(1) end -- let the other workers' updates arrive meanwhile
  end
  psl.barrier("incremented")
  local exact = 0
  for w = 0, n - 1 do
    exact = exact + tonumber(psl.get("counter/worker/" .. w) or "0")
  end
  local shared = tonumber(psl.get("counter/shared") or "0")
  return {
    expected = times * n,
    per_worker_sum = exact,         -- always equals expected
    shared_counter = shared,        -- at most expected: concurrent increments were lost to LWW
    lost_to_lww = times * n - shared,
  }
end
