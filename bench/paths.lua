-- wrk script: GET a random path from the file named by BENCH_PATHS (one path a
-- line, e.g. "/audit?userId=...&limit=100"). Any status but 200 is counted as
-- "other". done() prints one "BENCH ..." line (bench/query-scale.sh reads it).

local paths = {}
local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(os.getenv("BENCH_PATHS") or "", "r"), "BENCH_PATHS: no such file")
   for line in f:lines() do
      if #line > 0 then paths[#paths + 1] = line end
   end
   f:close()
   assert(#paths > 0, "BENCH_PATHS is empty")
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
   ok2xx = 0
   other = 0
end

function request()
   return wrk.format("GET", paths[math.random(1, #paths)])
end

function response(status, headers, body)
   if status == 200 then
      ok2xx = ok2xx + 1
   else
      other = other + 1
      if other <= 3 then
         io.stderr:write("unexpected status " .. status .. ": " .. tostring(body) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local c2, co = 0, 0
   for _, t in ipairs(threads) do
      c2 = c2 + (t:get("ok2xx") or 0)
      co = co + (t:get("other") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d ok2xx=%d other=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
      summary.requests, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      c2, co, e.connect, e.read, e.write, e.timeout))
end
