-- Submission load: each wrk thread is one developer with its own API token (BENCH_TOKENS,
-- comma-separated, one per thread); every request creates and submits an application
-- (POST /api/v1/applications with "submit": true), which runs triage with the active ruleset.
-- Prints one WRK_JSON line that bench/http_common.py parses.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local threads = {}
local body_template = os.getenv("BENCH_BODY")

setup = function(thread)
  threads[#threads + 1] = thread
  thread:set("token", tokens[#threads])
  thread:set("thread_no", #threads)
end

init = function(args)
  created, failed, sent = 0, 0, 0
  headers = {["Authorization"] = "Bearer " .. token, ["User-Agent"] = "reviewapp-bench/1.0",
             ["Content-Type"] = "application/json", ["Host"] = wrk.headers["Host"]}
end

request = function()
  sent = sent + 1
  local body = string.gsub(body_template, "BENCH_N", thread_no .. "-" .. sent)
  return wrk.format("POST", "/api/v1/applications", headers, body)
end

response = function(status, hdrs, body)
  if status == 201 then created = created + 1 else
    failed = failed + 1
    if failed <= 3 then io.stderr:write(status .. " " .. string.sub(body, 1, 300) .. "\n") end
  end
end

done = function(summary, latency, requests)
  local c, f = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("created"); f = f + t:get("failed") end
  local err = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, "p99": %d, "non2xx": %d, "errors": %d, "created": %d, "failed": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), err.status, err.connect + err.read + err.write + err.timeout, c, f))
end
