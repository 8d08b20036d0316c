-- wrk script for GET /price: a random seeded product id and a random user
-- from a fixed pool of UUID v4 ids, so the audit store sees realistic keys.
-- done() prints one machine-readable "BENCH ..." line that bench/run.sh parses.
--
-- Settings (environment): BENCH_USERS (pool size, default 1000),
-- BENCH_PRODUCTS (PROD-00001..PROD-N, default 10000; PROD-101 is added),
-- BENCH_TENANT (sent as X-Tenant-ID when set: TENANCY=on, AUTH_MODE=none).

local users_n = tonumber(os.getenv("BENCH_USERS") or "") or 1000
local products_n = tonumber(os.getenv("BENCH_PRODUCTS") or "") or 10000
local tenant = os.getenv("BENCH_TENANT")
local headers = nil
if tenant and tenant ~= "" then
   headers = { ["X-Tenant-ID"] = tenant }
end

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local hex = "0123456789abcdef"
local variant = "89ab"

local function hexdigits(n)
   local t = {}
   for i = 1, n do
      local k = math.random(1, 16)
      t[i] = hex:sub(k, k)
   end
   return table.concat(t)
end

local function uuid4()
   local k = math.random(1, 4)
   return hexdigits(8) .. "-" .. hexdigits(4) .. "-4" .. hexdigits(3) .. "-" ..
      variant:sub(k, k) .. hexdigits(3) .. "-" .. hexdigits(12)
end

local users = {}

function init(args)
   -- Same pool in every thread (fixed seed), then a per-thread stream.
   math.randomseed(20260123)
   for i = 1, users_n do
      users[i] = uuid4()
   end
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
   ok2xx = 0
   nf404 = 0
   other = 0
end

function request()
   local n = math.random(0, products_n)
   local id
   if n == 0 then
      id = "PROD-101"
   else
      id = string.format("PROD-%05d", n)
   end
   return wrk.format("GET", "/price?id=" .. id .. "&userId=" .. users[math.random(1, users_n)],
                     headers)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
   elseif status == 404 then
      nf404 = nf404 + 1
   else
      other = other + 1
      if other <= 3 then
         io.stderr:write("unexpected status " .. status .. ": " .. tostring(body) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local c2, c4, co = 0, 0, 0
   for _, t in ipairs(threads) do
      c2 = c2 + (t:get("ok2xx") or 0)
      c4 = c4 + (t:get("nf404") or 0)
      co = co + (t:get("other") or 0)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "ok2xx=%d nf404=%d other=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      c2, c4, co, e.connect, e.read, e.write, e.status, e.timeout))
end
