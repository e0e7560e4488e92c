-- Claim-next load: each wrk thread is one reviewer with its own API token (BENCH_TOKENS,
-- comma-separated, one per thread) and one connection. It claims the next application, then
-- releases it, and again. Prints one WRK_JSON line that bench/http_common.py parses.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local threads = {}

setup = function(thread)
  threads[#threads + 1] = thread
  thread:set("token", tokens[#threads])
end

init = function(args)
  held = nil
  claims, releases, empty, refused = 0, 0, 0, 0
  headers = {["Authorization"] = "Bearer " .. token, ["User-Agent"] = "reviewapp-bench/1.0",
             ["Host"] = wrk.headers["Host"]}
end

request = function()
  if held then
    return wrk.format("POST", "/api/v1/applications/" .. held .. "/release", headers)
  end
  return wrk.format("POST", "/api/v1/queue/claim-next", headers)
end

response = function(status, hdrs, body)
  if held then
    if status == 200 then releases = releases + 1 else refused = refused + 1 end
    held = nil
  elseif status == 200 then
    held = string.match(body, '"reference"%s*:%s*"(APP%-%d+)"')
    claims = claims + 1
  elseif status == 204 then
    empty = empty + 1
  else
    refused = refused + 1
  end
end

done = function(summary, latency, requests)
  local c, r, e, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("claims"); r = r + t:get("releases")
    e = e + t:get("empty"); x = x + t:get("refused")
  end
  local err = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, "p99": %d, "non2xx": %d, "errors": %d, "claims": %d, "releases": %d, "empty": %d, "refused": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), err.status, err.connect + err.read + err.write + err.timeout,
    c, r, e, x))
end
