-- POST to one path (BENCH_PATH) as many API clients: each wrk thread is one client with its own
-- API token (BENCH_TOKENS, comma-separated, one per thread) and one connection. Prints one
-- WRK_JSON line that bench/http_common.py parses.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local path = os.getenv("BENCH_PATH") or "/"
local threads = {}

setup = function(thread)
  threads[#threads + 1] = thread
  thread:set("token", tokens[#threads])
end

init = function(args)
  headers = {["Authorization"] = "Bearer " .. token, ["User-Agent"] = "reviewapp-bench/1.0",
             ["Host"] = wrk.headers["Host"]}
end

request = function()
  return wrk.format("POST", path, headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, "p99": %d, "non2xx": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
