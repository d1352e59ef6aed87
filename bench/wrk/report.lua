-- Shared by the unigate bench scripts: done() prints one machine-readable line,
--   UBENCH {"requests":...,"rps":...,"p50_us":...,...}
-- that bench/loadgen.py picks out of wrk's output. Latencies are wrk's, in microseconds:
-- from writing the request to reading the end of the response (for a stream: its last byte).
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1000000
  local p = function(q) return latency:percentile(q) end
  io.write("UBENCH {")
  io.write(string.format('"requests":%d,"duration_s":%.3f,"rps":%.2f,"bytes":%d,',
    summary.requests, secs, summary.requests / secs, summary.bytes))
  io.write(string.format('"p50_us":%d,"p75_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,',
    p(50), p(75), p(90), p(99), p(99.9)))
  io.write(string.format('"min_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f,',
    latency.min, latency.max, latency.mean, latency.stdev))
  io.write(string.format('"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d',
    e.connect, e.read, e.write, e.status, e.timeout))
  io.write("}\n")
end
