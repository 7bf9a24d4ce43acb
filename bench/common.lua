-- Shared by the wrk scripts: thread setup, per-thread counters and the report. A script loads it
-- first, calls start_thread(args) from its own init(), and defines request(); response() and
-- done() are here. done() prints a human summary and one machine-readable line starting with
-- "BENCH_RESULT " (JSON) for bench/run.py.
--
-- Values passed with thread:set() become globals of that thread's Lua state, and thread:get()
-- reads them back in done(): everything shared that way must be a global, not a local.

threads = {}
local next_thread_id = 1
local default_run_id = tostring(os.time())

function setup(thread)
   thread:set("thread_id", next_thread_id)
   thread:set("run_id", default_run_id)
   next_thread_id = next_thread_id + 1
   table.insert(threads, thread)
end

-- args[1] is the run id (prefixes every key, so runs against one database never collide),
-- args[2] the API key sent as X-API-Key.
function start_thread(args)
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

function response(status, headers, body)
   responses = responses + 1
   if status == 201 then
      created = created + 1
   else
      non201 = non201 + 1
      local key = tostring(status)
      statuses[key] = (statuses[key] or 0) + 1
   end
end

function done(summary, latency, requests)
   local sent, read, ok, bad = 0, 0, 0, 0
   local by_status = {}
   local rid = threads[1]:get("run_id")
   for _, thread in ipairs(threads) do
      sent = sent + thread:get("counter")
      read = read + thread:get("responses")
      ok = ok + thread:get("created")
      bad = bad + thread:get("non201")
      for code, count in pairs(thread:get("statuses")) do
         by_status[code] = (by_status[code] or 0) + count
      end
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local p50 = latency:percentile(50) / 1000
   local p95 = latency:percentile(95) / 1000
   local p99 = latency:percentile(99) / 1000

   io.write("------------------------------------------------------------\n")
   io.write(string.format("requests   %d in %.2fs = %.1f req/s\n", summary.requests, seconds,
                          summary.requests / seconds))
   io.write(string.format("latency    p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms\n",
                          p50, p95, p99, latency.max / 1000))
   io.write(string.format("201        %d\n", ok))
   io.write(string.format("non-201    %d", bad))
   for code, count in pairs(by_status) do
      io.write(string.format("  [%s: %d]", code, count))
   end
   io.write("\n")
   io.write(string.format("socket errors  connect %d  read %d  write %d  timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   io.write(string.format("sent %d, answered %d (unanswered at cut-off: %d)\n", sent, read, sent - read))

   local parts = {}
   for code, count in pairs(by_status) do
      table.insert(parts, string.format('"%s":%d', code, count))
   end
   io.write(string.format(
      'BENCH_RESULT {"run_id":"%s","requests":%d,"seconds":%.3f,"rps":%.1f,' ..
      '"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
      '"created":%d,"non201":%d,"by_status":{%s},"socket_errors":%d,"timeouts":%d,' ..
      '"sent":%d,"answered":%d}\n',
      rid, summary.requests, seconds, summary.requests / seconds,
      p50, p95, p99, latency.max / 1000, latency.mean / 1000,
      ok, bad, table.concat(parts, ","), socket_errors, e.timeout, sent, read))
end
