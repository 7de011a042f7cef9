-- wrk script of `make bench-serving`: POSTs one body (read from the file named by
-- MAESTRO_WRK_BODY, with the headers in MAESTRO_WRK_HEADERS, one `Name: value` per line;
-- JSON's Content-Type when none) to the URL given on wrk's command line, and prints one
-- machine-readable line at the end, so the harness never has to parse wrk's human summary.
-- wrk's latencies and durations are in microseconds.
local path = os.getenv("MAESTRO_WRK_BODY")
if path == nil or path == "" then
  error("set MAESTRO_WRK_BODY to the file holding the request body")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
for name, value in string.gmatch(os.getenv("MAESTRO_WRK_HEADERS") or "", "([^:\n]+): ([^\n]*)") do
  wrk.headers[name] = value
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "maestro-wrk requests=%.0f duration_us=%.0f bytes=%.0f p50_us=%.0f p90_us=%.0f"
      .. " p99_us=%.0f max_us=%.0f mean_us=%.1f errors_connect=%.0f errors_read=%.0f"
      .. " errors_write=%.0f errors_status=%.0f errors_timeout=%.0f\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
