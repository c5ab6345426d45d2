-- search.lua: a parallel search that shares the best solution found so far under one key, the
-- pattern of the paper's motion-planning case study. Workers sample the Rastrigin function (many
-- local minima, global minimum 0 at the origin) in rounds; after each round a worker reads the
-- shared best, and if its own is better, publishes it; a worker that sees a better shared best
-- restarts its local search around it. Publishing under one key can race (last writer wins), so
-- every worker also keeps its own best under its own key and worker 0 takes the minimum at the
-- end: exact, whatever the races did.
--   psl run examples/search.lua --workers 4         (--args N: rounds, default 60)

local function rastrigin(x, y)
  return 20 + x * x - 10 * math.cos(2 * math.pi * x) + y * y - 10 * math.cos(2 * math.pi * y)
end

local function encode(v, x, y) return string.format("%.17g %.17g %.17g", v, x, y) end
local function decode(s)
  if not s then return nil end
  local v, x, y = s:match("^(%S+) (%S+) (%S+)$")
  return tonumber(v), tonumber(x), tonumber(y)
end

function main(args)
  local me, n = psl.worker()
  local rounds = tonumber(args) or 60
  math.randomseed(99 + me)
  local bv, bx, by = math.huge, 0, 0
  local cx, cy, radius = (math.random() - 0.5) * 10, (math.random() - 0.5) * 10, 5.0
  local adopted = 0
  for _ = 1, rounds do
    for _ = 1, 500 do
      local x = cx + (math.random() - 0.5) * 2 * radius
      local y = cy + (math.random() - 0.5) * 2 * radius
      local v = rastrigin(x, y)
      if v < bv then bv, bx, by = v, x, y end
    end
    local sv, sx, sy = decode(psl.get("search/best"))
    if sv and sv < bv then
      cx, cy = sx, sy                    -- someone else found better: search around it
      adopted = adopted + 1
    else
      psl.put("search/best", encode(bv, bx, by))
      cx, cy = bx, by
    end
    radius = math.max(radius * 0.85, 0.01)
  end
  psl.put("search/best/" .. me, encode(bv, bx, by))
  psl.barrier("searched")
  if me ~= 0 then return { worker = me, best = bv, adopted = adopted } end
  local gv, gx, gy, gw = math.huge, 0, 0, -1
  for w = 0, n - 1 do
    local v, x, y = decode(psl.get("search/best/" .. w))
    if v and v < gv then gv, gx, gy, gw = v, x, y, w end
  end
  return { best = gv, x = gx, y = gy, found_by = gw, workers = n }
end
