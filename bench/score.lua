-- wrk script: POST /v1/score with a unique Idempotency-Key and event_id on every request.
--
--   wrk -t2 -c64 -d20s -s bench/score.lua http://127.0.0.1:8000 -- RUN_ID [API_KEY]
--
-- RUN_ID (optional, default: derived from the clock) prefixes every key and event_id, so runs
-- against the same database never collide. API_KEY, when given, is sent as X-API-Key (a client
-- with the score:write scope: `riskgate clients create --name bench --scopes score:write`). Each thread adds its own number and a counter:
-- "bench-<RUN_ID>-t<thread>-<n>". The signals vary deterministically with the counter, so the
-- server sees all three actions and different score paths, and two runs send the same bodies.
--
-- report.lua (loaded at the end) prints a human summary and one machine-readable line starting
-- with "BENCH_RESULT " (JSON) that bench/run.py parses.

threads = {}  -- global: report.lua reads it
local next_thread_id = 1
local default_run_id = tostring(os.time())

local sources = { "flight", "hotel", "rail" }

-- Values passed with thread:set() become globals of that thread's Lua state, and thread:get()
-- reads them back in done(): everything shared that way must be a global, not a local.
function setup(thread)
   thread:set("thread_id", next_thread_id)
   thread:set("run_id", default_run_id)
   next_thread_id = next_thread_id + 1
   table.insert(threads, thread)
end

function init(args)
   if args[1] ~= nil and args[1] ~= "" then
      run_id = args[1]
   end
   api_key = args[2]
   prefix = string.format("bench-%s-t%d-", run_id, thread_id)
   counter = 0      -- requests generated (sent, or about to be)
   responses = 0    -- responses read
   created = 0      -- 201s
   non201 = 0
   statuses = {}    -- status code (as a string) -> count, for everything that is not a 201
end

-- A deterministic value in [0, 1] with one decimal, different per signal.
local function tenth(n, mul, add)
   return ((n * mul + add) % 11) / 10
end

function request()
   counter = counter + 1
   local n = counter
   local id = prefix .. n
   local body = string.format(
      '{"event_id":"%s","source":"%s","signals":{"delay":%.1f,"weather":%.1f,"geo":%.1f,"payment_anomaly":%d}}',
      id,
      sources[(n % 3) + 1],
      tenth(n, 1, 0),
      tenth(n, 3, 4),
      tenth(n, 7, 2),
      (n % 5 == 0) and 1 or 0
   )
   local headers = {
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = id,
   }
   if api_key ~= nil and api_key ~= "" then
      headers["X-API-Key"] = api_key
   end
   return wrk.format("POST", "/v1/score", headers, body)
end

-- response() and done(): the shared counters and report
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
