-- wrk script for scripts/bench.sh: every request POSTs one multipart upload to /v1/process,
-- an ops part and then the file part. BENCH_FILE names the image, BENCH_OPS the pipeline (JSON).
-- At the end it prints the latency percentiles and the responses by status, with how many 503s
-- carried Retry-After, as lines the script reads.
local path = os.getenv("BENCH_FILE")
local ops = os.getenv("BENCH_OPS")
local f = assert(io.open(path, "rb"))
local data = f:read("*a")
f:close()

local boundary = "imaged-bench-7d1e0c"
wrk.method = "POST"
wrk.path = "/v1/process"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"ops\"\r\n\r\n" .. ops .. "\r\n" ..
  "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"file\"; filename=\"source\"\r\n" ..
  "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n" ..
  "--" .. boundary .. "--\r\n"

local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  ok, busy, retry_after, other = 0, 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
    if headers["Retry-After"] ~= nil then retry_after = retry_after + 1 end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local o, b, r, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("busy"); r = r + t:get("retry_after"); x = x + t:get("other")
  end
  io.write(string.format("BENCH requests=%d seconds=%.3f p50_ms=%.1f p99_ms=%.1f ok=%d busy=%d retry_after=%d other=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    o, b, r, x, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
