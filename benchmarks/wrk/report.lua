-- Appended to every workload script by benchmarks/run.py: at the end of the
-- run, print wrk's own counters as one JSON line the runner can read without
-- parsing wrk's human-readable units.  Latencies are in microseconds.
-- errors.status counts responses with a status of 400 or more.

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'CARPINUS_BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"latency_mean_us": %.3f, "latency_p50_us": %d, "latency_p99_us": %d, ' ..
      '"latency_max_us": %d, "non_2xx": %d, "connect": %d, "read": %d, ' ..
      '"write": %d, "timeout": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(99),
      latency.max, errors.status, errors.connect, errors.read,
      errors.write, errors.timeout))
end
