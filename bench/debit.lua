-- wrk script: POST /v1/transactions, a unique Idempotency-Key per request, debits of 1.00 GBP.
--
--   wrk -t2 -c64 -d20s -s bench/debit.lua http://127.0.0.1:8000 -- RUN_ID API_KEY FIRST COUNT
--
-- FIRST and COUNT name the accounts to debit: ids FIRST .. FIRST+COUNT-1, taken in turn by a
-- per-thread counter (COUNT 1 is the hot-account scenario: every request contends for one row).
-- The accounts must belong to the client of API_KEY and hold enough for the whole run, so every
-- request is a real approved debit. bench/run.py's debit-spread and debit-hot scenarios set
-- this up; common.lua counts the answers and reports.

dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function init(args)
   start_thread(args)
   first_account = tonumber(args[3] or "1")
   account_count = tonumber(args[4] or "1")
end

function request()
   counter = counter + 1
   -- threads start at different offsets so two threads do not walk the accounts in lockstep
   local account = first_account + ((counter * 7 + thread_id * 131) % account_count)
   local body = string.format('{"account_id":%d,"amount":"1.00","currency":"GBP"}', account)
   local headers = {
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = prefix .. counter,
      ["X-API-Key"] = api_key,
   }
   return wrk.format("POST", "/v1/transactions", headers, body)
end

