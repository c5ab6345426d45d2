-- wordcount.lua: word count over a text split across workers (the text comes as the args:
-- `--args-file`). Worker w counts the lines whose number is w modulo the worker count and
-- publishes its partial counts as one value under its own key; after a barrier, worker 0 merges
-- the partial counts and returns the most frequent words.
--   psl run examples/wordcount.lua --workers 3 --args-file examples/data/lighthouse.txt

local function serialize(counts)
  local parts = {}
  for word, c in pairs(counts) do parts[#parts + 1] = word .. "=" .. c end
  table.sort(parts)
  return table.concat(parts, "\n")
end

function main(text)
  local me, n = psl.worker()
  assert(text and #text > 0, "give the text with --args-file FILE")
  local counts, lines, words = {}, 0, 0
  local i = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if i % n == me then
      lines = lines + 1
      for word in line:lower():gmatch("[%a']+") do
        counts[word] = (counts[word] or 0) + 1
        words = words + 1
      end
    end
    i = i + 1
  end
  psl.put("wc/part/" .. me, serialize(counts))
  psl.barrier("counted")
  if me ~= 0 then return { worker = me, lines = lines, words = words } end
  local total, all_words = {}, 0
  for w = 0, n - 1 do
    for word, c in (psl.get("wc/part/" .. w) or ""):gmatch("([^=\n]+)=(%d+)") do
      total[word] = (total[word] or 0) + tonumber(c)
      all_words = all_words + tonumber(c)
    end
  end
  local list = {}
  for word, c in pairs(total) do list[#list + 1] = { word = word, count = c } end
  table.sort(list, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return a.word < b.word
  end)
  local top = {}
  for k = 1, math.min(10, #list) do top[k] = list[k] end
  return { words = all_words, distinct = #list, top = top }
end
