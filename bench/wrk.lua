-- wrk script of `make bench`: the request comes from the environment, the summary is
-- one JSON line that bench/run.py reads.
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local token = os.getenv("BENCH_TOKEN")

wrk.method = method
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- Sign-ups: every request a new account, named BENCH_SIGNUP_PREFIX, the thread and a
-- counter.
local signup = os.getenv("BENCH_SIGNUP_PREFIX")
if signup and signup ~= "" then
  local threads = 0
  setup = function(thread)
    threads = threads + 1
    thread:set("tid", threads)
  end
  local counter = 0
  request = function()
    counter = counter + 1
    local name = signup .. tid .. "n" .. counter
    return wrk.format(nil, nil, nil,
      '{"username":"' .. name .. '","password":"bench-password"}')
  end
end

-- Reads of many users: every request with the next token of BENCH_TOKENS (separated by
-- spaces), in turn.
local tokens = os.getenv("BENCH_TOKENS")
if tokens and tokens ~= "" then
  local list = {}
  for t in string.gmatch(tokens, "%S+") do
    list[#list + 1] = t
  end
  local turn = 0
  request = function()
    turn = turn % #list + 1
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. list[turn] })
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
