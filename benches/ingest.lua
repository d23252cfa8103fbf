-- Load for the central server's ingest: each request is a batch of HW_BATCH alert envelopes
-- (default 10) with ids no request repeats, from device "load" with token HW_TOKEN.
--   hydrowatch --db load.db serve token create load      (prints the token)
--   hydrowatch --db load.db serve --listen 127.0.0.1:8080 --rate-limit 0 &   (one device: no limit)
--   HW_TOKEN=<token> wrk -t2 -c16 -d20s --latency -s benches/ingest.lua http://127.0.0.1:8080
-- Envelopes per second = requests per second x HW_BATCH.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  token = os.getenv("HW_TOKEN") or ""
  batch = tonumber(os.getenv("HW_BATCH") or "10")
  counter = 0
end

function request()
  counter = counter + 1
  local messages = {}
  for i = 1, batch do
    messages[i] = string.format(
      '{"device_id":"load","message_id":"%d-%d-%d","kind":"alert","created_at":"2024-07-01T00:00:00Z",'
      .. '"body":{"machine_number":1,"time":"2024-07-01 09:00","outlier_stage":4,"value":181.5,'
      .. '"series":"flow_rate","unit":"m3/h","direction":"high","expected":120.2,"percentile":99.9999,'
      .. '"kind":"outlier","alarm_id":%d,"state":"opened"}}',
      tid, counter, i, counter)
  end
  local body = '{"device_id":"load","messages":[' .. table.concat(messages, ",") .. ']}'
  return wrk.format("POST", "/api/v1/ingest",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("HTTP " .. status .. ": " .. body .. "\n")
  end
end
