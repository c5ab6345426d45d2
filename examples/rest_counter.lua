-- rest_counter.lua: a deployed function (psl deploy) serving a small key-value REST counter.
-- Each invocation is one request, "VERB PATH": "incr hits" adds one to the counter at path
-- "hits" and returns its new value; "get hits" reads it (0 when absent); "reset hits" deletes
-- it. Counters live in the function's capsule, so they survive across invocations and enclaves;
-- the answer is sent only once the write is durable.
--   psl deploy examples/rest_counter.lua --node URL --name counter --owner owner.key \
--       --servers-from-node
--   psl invoke counter --args "incr hits"    ->  {"path":"hits","value":1}

local function parse(args)
  local verb, path = string.match(args or "", "^%s*(%a+)%s+([%w%._/%-]+)%s*$")
  return verb, path
end

function handle(args)
  local verb, path = parse(args)
  if not verb then
    error("bad request: expected 'incr PATH', 'get PATH' or 'reset PATH'")
  end
  local key = "counter/" .. path
  local value = tonumber(psl.get(key) or "0") or 0
  if verb == "incr" then
    value = value + 1
    psl.put(key, tostring(value))
  elseif verb == "reset" then
    psl.del(key)
    value = 0
  elseif verb ~= "get" then
    error("bad request: unknown verb " .. verb)
  end
  return {path = path, value = value}
end
