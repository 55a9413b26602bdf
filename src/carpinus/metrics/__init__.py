"""Prometheus metrics (--metrics-bind HOST:PORT), summed over every worker.

Theory of operation
-------------------
Counting happens where the work happens: the C core counts requests,
responses by status class, request durations (histogram buckets), bytes,
refusals and WebSocket upgrades in its ServerState (the per-response ones
only when the ServerState was made with metrics=True, so a server without
--metrics-bind pays one test per response and nothing else).

Each serving process publishes a snapshot of those counters about ten times
a second (every tick of its main loop) and once more when it has shut down,
into a small shared-memory block (snapshot.py): two fixed arrays of float64
written in turn behind a publication count, so that a reader never sees half
of an update and a worker killed while writing still leaves its last whole
snapshot.  A worker's block is a file in a directory the supervisor made
for the purpose (on tmpfs when /dev/shm exists); without a supervisor it is
an anonymous mapping of the process itself.

The scrape endpoint (exporter.py, prometheus_client's HTTP server in a thread
of the supervisor, or of the single server process) reads every block on
each scrape and sums them: counters over every worker that ever ran (the
blocks of exited workers are folded into a running total, so counters never
go back when a worker is replaced), gauges over the workers alive now.  The
supervisor adds what only it knows: worker restarts and the number of
workers.  Nothing crosses a pipe at scrape time, so a scrape never waits for a
busy worker; the price is that a scrape may be up to one tick (0.1 s) behind.
"""
