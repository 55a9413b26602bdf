"""The pieces of benchmarks/run.py: one module per responsibility.

    requirements  what a server or the runner needs, and how to get it
    servers       the server table; start, readiness, stop by PID
    nginx         the nginx ceiling's own configuration
    workloads     the workload table; the wrk Lua script and a probe per workload
    wrk           runs wrk pinned to the client CPUs and reads its result
    results       records, medians and spread, the JSON document
    markdown      the markdown tables
    chart         the PNG chart (imports matplotlib only when called)
"""
