#!/usr/bin/env bash
# scripts/autobahn.sh PYTHON KOSOKU PORT [kosoku options...]
# Serve the demo app on 127.0.0.1:PORT, run kosoku's Autobahn cases against its
# /ws echo, stop the server, print the summary (reports in autobahn-reports/).
set -euo pipefail
python=$1 kosoku=$2 port=$3
shift 3
"$python" -m carpinus carpinus.demo:app --host 127.0.0.1 --port "$port" --log-level warning &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
# kosoku exits 1 when a case failed: still print the summary, then fail
status=0
"$kosoku" "127.0.0.1:$port/ws" -o autobahn-reports "$@" | tail -n 5 || status=$?
"$python" - <<'PY'
import collections, json, pathlib
index = json.loads(pathlib.Path("autobahn-reports/index.json").read_text())
counts = collections.Counter(case["behavior"] for agent in index.values()
                             for case in agent.values())
print("autobahn:", ", ".join(f"{n} {b}" for b, n in sorted(counts.items())))
failed = sorted(case_id for agent in index.values() for case_id, case in agent.items()
                if case["behavior"] == "FAILED")
if failed:
    print("FAILED:", " ".join(failed))
PY
exit "$status"
