-- wrk script for a read/write mix: BENCH_WRITE_PCT percent (default 5) of the
-- requests are PUT /products/{id}/price with If-Match, the rest GET /price as
-- in bench/price.lua. Needs a freshly seeded catalogue (`pricing db seed`:
-- every PROD-nnnnn at version 1).
--
-- Each wrk thread writes only the products whose number is its id modulo 64
-- (the most threads wrk runs here), in turn (round robin), and learns each
-- product's version from the answer of its previous write (the product's
-- "version"). So threads never race each other for one product, and a thread
-- writes one product again only after all its others (~156 of 10000): with
-- fewer connections than that, two writes of one product are never in flight
-- together, and each If-Match is current. A 412 (stale412) means that failed.
-- done() prints one
-- "BENCH ..." line like price.lua, with the writes counted apart (put_sent,
-- put_ok, put_rps). wrk's latency histogram holds both kinds of request: the
-- p99 of writes alone comes from a run with BENCH_WRITE_PCT=100.
--
-- Settings (environment): BENCH_WRITE_PCT (0-100), BENCH_WRITE_OFFSET (0-63,
-- see below), BENCH_USERS (pool size, default 1000), BENCH_PRODUCTS
-- (PROD-00001..PROD-N, default 10000).

local write_pct = tonumber(os.getenv("BENCH_WRITE_PCT") or "") or 5
local users_n = tonumber(os.getenv("BENCH_USERS") or "") or 1000
local products_n = tonumber(os.getenv("BENCH_PRODUCTS") or "") or 10000
-- Shifts the threads' product sets, so successive runs on one catalogue write
-- disjoint products (each at the version the script expects).
local write_offset = tonumber(os.getenv("BENCH_WRITE_OFFSET") or "") or 0

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
local versions = {} -- product id -> version last seen (this thread's products)

function init(args)
   math.randomseed(20260123)
   for i = 1, users_n do
      users[i] = uuid4()
   end
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
   ok2xx, nf404, other, wput, wok, stale412 = 0, 0, 0, 0, 0, 0
end

local function product(n)
   return string.format("PROD-%05d", n)
end

function request()
   if math.random(1, 100) <= write_pct then
      -- the next product of this thread: n = off + 64 k, 1 <= n <= products_n
      local off = ((tid or 0) + write_offset) % 64 + 1
      local id = product(off + 64 * (wput % (math.floor((products_n - off) / 64) + 1)))
      local v = versions[id] or 1
      local body = string.format('{"amount":"%d.%02d","currency":"USD"}',
                                 math.random(1, 999), math.random(0, 99))
      wput = wput + 1
      return wrk.format("PUT", "/products/" .. id .. "/price",
                        {["Content-Type"] = "application/json", ["If-Match"] = '"' .. v .. '"'},
                        body)
   end
   local n = math.random(0, products_n)
   local id = n == 0 and "PROD-101" or product(n)
   return wrk.format("GET", "/price?id=" .. id .. "&userId=" .. users[math.random(1, users_n)])
end

function response(status, headers, body)
   local pid = body and body:match('^{"productId":"([^"]+)","name"')
   if pid then -- a product: the answer of a write
      local v = tonumber(body:match('"version":(%d+)'))
      if v then
         versions[pid] = v
      end
   end
   if status == 412 then
      stale412 = stale412 + 1
   elseif pid and status == 200 then
      wok = wok + 1
   elseif status >= 200 and status < 300 then
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
   local c2, c4, co, wp, wo, ws = 0, 0, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      c2 = c2 + (t:get("ok2xx") or 0)
      c4 = c4 + (t:get("nf404") or 0)
      co = co + (t:get("other") or 0)
      wp = wp + (t:get("wput") or 0)
      wo = wo + (t:get("wok") or 0)
      ws = ws + (t:get("stale412") or 0)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "ok2xx=%d nf404=%d other=%d put_sent=%d put_ok=%d put_rps=%.1f stale412=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      c2, c4, co, wp, wo, wo / secs, ws, e.connect, e.read, e.write, e.status, e.timeout))
end
