-- wrk script of the http-wrk suite (run by bench/wrk.ts): counterd's counter routes on Zipf keys,
-- with every answer counted so the benchmark can check the counts read back afterwards.
--
-- Settings come from the environment, not from init()'s arguments, because setup() runs in wrk's
-- main Lua state, which never sees those arguments, and it needs the ports:
--   WRK_COUNTERS_MODE      "increment": POST /v1/counter/{type}/{id}/increment, body {"by":1}
--                          "get":       GET  /v1/counter/{type}/{id}
--   WRK_COUNTERS_TYPE      the counter type of every request
--   WRK_COUNTERS_IDS       a file of ids, one a line (the Zipf table); the requests cycle through
--                          it, thread i starting i/threads of the way in
--   WRK_COUNTERS_THREADS   wrk's -t, to spread those starting points
--   WRK_COUNTERS_EXPECTED  "get" only: a file of "id value" lines; every 2xx answer's value must
--                          be the one of its id (a wrong or unparseable answer is a mismatch)
--   WRK_COUNTERS_PORTS     optional "p0,p1,…" on the URL's host: thread i connects to port i mod n
--                          (a server with one port per thread, see bench/uws-threads.ts)
-- done() prints one line, `wrk-counters {"threads":[{"ok2xx":…,"other":…,"mismatches":…},…]}`:
-- per thread, the 2xx answers, the other answers and the mismatches.

local MARK = "{id}"

-- Main state: the threads, so done() can read their counts.
local threads = {}

function setup(thread)
   local index = #threads
   threads[index + 1] = thread
   thread:set("thread_index", index)
   local ports = os.getenv("WRK_COUNTERS_PORTS")
   if ports ~= nil and ports ~= "" then
      local list = {}
      for p in ports:gmatch("%d+") do list[#list + 1] = p end
      thread.addr = wrk.lookup(wrk.host, list[index % #list + 1])[1]
   end
end

-- Thread states. The counters are globals: done() reads them with thread:get().
ok2xx = 0
other = 0
mismatches = 0

local ids = {}
local n = 0
local cursor = 1
local prefix, suffix
local expected = nil
local want_type

local function need(name)
   local v = os.getenv(name)
   if v == nil or v == "" then error(name .. " is not set") end
   return v
end

function init(args)
   local mode = need("WRK_COUNTERS_MODE")
   want_type = need("WRK_COUNTERS_TYPE")
   local template
   if mode == "increment" then
      local headers = { ["Content-Type"] = "application/json" }
      -- WRK_COUNTERS_PREFER: a Prefer header for the increments ("return=minimal": 204, no value)
      local prefer = os.getenv("WRK_COUNTERS_PREFER")
      if prefer ~= nil and prefer ~= "" then headers["Prefer"] = prefer end
      template = wrk.format("POST", "/v1/counter/" .. want_type .. "/" .. MARK .. "/increment", headers, '{"by":1}')
   elseif mode == "get" then
      template = wrk.format("GET", "/v1/counter/" .. want_type .. "/" .. MARK)
      expected = {}
      for line in io.lines(need("WRK_COUNTERS_EXPECTED")) do
         local id, value = line:match("^(%S+)%s+(%S+)$")
         if id ~= nil then expected[id] = tonumber(value) end
      end
   else
      error("WRK_COUNTERS_MODE must be increment or get, got " .. mode)
   end
   -- Every request is the template with the id in place of the mark: one concatenation each.
   local at = template:find(MARK, 1, true)
   prefix = template:sub(1, at - 1)
   suffix = template:sub(at + #MARK)
   for line in io.lines(need("WRK_COUNTERS_IDS")) do
      if line ~= "" then
         n = n + 1
         ids[n] = line
      end
   end
   if n == 0 then error("no ids in " .. need("WRK_COUNTERS_IDS")) end
   local count = tonumber(os.getenv("WRK_COUNTERS_THREADS") or "1")
   cursor = math.floor(thread_index * n / count) % n + 1
end

function request()
   local id = ids[cursor]
   cursor = cursor + 1
   if cursor > n then cursor = 1 end
   return prefix .. id .. suffix
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      other = other + 1
      return
   end
   ok2xx = ok2xx + 1
   if expected ~= nil then
      local t = body:match('"type":"([^"]*)"')
      local id = body:match('"id":"([^"]*)"')
      local value = tonumber(body:match('"value":(%-?%d+)'))
      if t ~= want_type or id == nil or value == nil or expected[id] ~= value then
         mismatches = mismatches + 1
      end
   end
end

function done(summary, latency, requests)
   local parts = {}
   for i, t in ipairs(threads) do
      parts[i] = string.format('{"ok2xx":%d,"other":%d,"mismatches":%d}', t:get("ok2xx"), t:get("other"), t:get("mismatches"))
   end
   io.write('wrk-counters {"threads":[' .. table.concat(parts, ",") .. ']}\n')
end
