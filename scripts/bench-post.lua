-- wrk script for scripts/bench.sh: every request POSTs to /v1/process. With BENCH_IMAGE_ID set it
-- names that stored image in a JSON body (the warm runs, answered by the processed-output
-- cache); otherwise it uploads BENCH_FILE as multipart, an ops part and then the file part.
-- BENCH_OPS is the pipeline (JSON). At the end it prints the latency percentiles, the responses
-- by status (with how many 503s carried Retry-After) and the answers the cache gave (X-Cache:
-- hit), as lines the script reads.
local ops = os.getenv("BENCH_OPS")
local image_id = os.getenv("BENCH_IMAGE_ID") or ""

wrk.method = "POST"
wrk.path = "/v1/process"
if image_id ~= "" then
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"image_id":"' .. image_id .. '","ops":' .. ops .. '}'
else
  local f = assert(io.open(os.getenv("BENCH_FILE"), "rb"))
  local data = f:read("*a")
  f:close()
  local boundary = "imaged-bench-7d1e0c"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  wrk.body = "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"ops\"\r\n\r\n" .. ops .. "\r\n" ..
    "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"file\"; filename=\"source\"\r\n" ..
    "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n" ..
    "--" .. boundary .. "--\r\n"
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  ok, busy, retry_after, other, hits = 0, 0, 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if headers["X-Cache"] == "hit" then hits = hits + 1 end
  elseif status == 503 then
    busy = busy + 1
    if headers["Retry-After"] ~= nil then retry_after = retry_after + 1 end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local o, b, r, x, h = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("busy"); r = r + t:get("retry_after"); x = x + t:get("other"); h = h + t:get("hits")
  end
  io.write(string.format("BENCH requests=%d seconds=%.3f p50_ms=%.1f p99_ms=%.1f ok=%d busy=%d retry_after=%d other=%d errors=%d hits=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    o, b, r, x, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, h))
end
