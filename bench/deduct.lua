-- wrk script: POST /api/billing/deduct (or, with BATCH > 0, /api/billing/deduct/batch with BATCH
-- charges a call) for bench/charge_compare.py, part (d) and (e).
--
--   wrk -t2 -c16 -d10s -s bench/deduct.lua http://127.0.0.1:8000 -- IDS_FILE TAG TOKEN [BATCH]
--
-- IDS_FILE: user ids, one a line; each charge picks one at random. TAG: the charges' model and the
-- prefix of their request ids (TAG-thread-n, unique within a run). TOKEN: x-internal-token.
-- done() prints one line `WRK {json}` with the counts and the latency percentiles (microseconds).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  tag, batch = args[2], tonumber(args[4] or "0")
  ids = {}
  for line in io.lines(args[1]) do
    if line ~= "" then
      ids[#ids + 1] = line
    end
  end
  math.randomseed(os.time() * 1000 + tid)
  headers = { ["Content-Type"] = "application/json", ["x-internal-token"] = args[3] }
  path = batch > 0 and "/api/billing/deduct/batch" or "/api/billing/deduct"
  n = 0
end

local function charge()
  n = n + 1
  return string.format(
    '{"user_id":"%s","amount":"0.0125","model":"%s","request_id":"%s-%d-%d"}',
    ids[math.random(#ids)], tag, tag, tid, n
  )
end

function request()
  local body
  if batch > 0 then
    local items = {}
    for i = 1, batch do
      items[i] = charge()
    end
    body = '{"charges":[' .. table.concat(items, ",") .. "]}"
  else
    body = charge()
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)
  ))
end
