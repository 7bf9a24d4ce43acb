-- wrk script: POST /v1/score with a unique Idempotency-Key and event_id on every request.
--
--   wrk -t2 -c64 -d20s -s bench/score.lua http://127.0.0.1:8000 -- RUN_ID [API_KEY]
--
-- RUN_ID (optional, default: derived from the clock) prefixes every key and event_id, so runs
-- against the same database never collide. API_KEY is sent as X-API-Key (a client with the
-- score:write scope: `riskgate clients create --name bench --scopes score:write`). Each thread
-- adds its own number and a counter: "bench-<RUN_ID>-t<thread>-<n>". The signals vary
-- deterministically with the counter, so the server sees all three actions and different score
-- paths, and two runs send the same bodies. common.lua counts the answers and reports.

dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local sources = { "flight", "hotel", "rail" }

function init(args)
   start_thread(args)
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

