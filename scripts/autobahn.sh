#!/usr/bin/env bash
# scripts/autobahn.sh PYTHON KOSOKU PORT [kosoku options...]
# Serve an echo on 127.0.0.1:PORT/ws, run kosoku's Autobahn cases against it,
# stop the server, print the summary; exit 1 unless every case was OK,
# NON-STRICT or INFORMATIONAL.
#   AUTOBAHN_SERVER  the command serving the echo, "{port}" replaced by PORT
#                    (default: carpinus's demo app run by PYTHON)
#   AUTOBAHN_OUT     the report directory (default: autobahn-reports)
set -euo pipefail
python=$1 kosoku=$2 port=$3
shift 3
out=${AUTOBAHN_OUT:-autobahn-reports}
server_command=${AUTOBAHN_SERVER:-"$python -m carpinus carpinus.demo:app --host 127.0.0.1 --port {port} --log-level warning"}
${server_command//\{port\}/$port} &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
rm -rf "$out"
started=$(date +%s)
# kosoku's own status says whether a case FAILED; the summary below judges
# every behaviour, so it is the one that counts
"$kosoku" "127.0.0.1:$port/ws" -o "$out" "$@" | tail -n 5 || true
echo "autobahn: $(( $(date +%s) - started )) s"
"$python" - "$out" <<'PY'
import collections, json, pathlib, sys
index = json.loads((pathlib.Path(sys.argv[1]) / "index.json").read_text())
cases = {case_id: case for agent in index.values() for case_id, case in agent.items()}
counts = collections.Counter(case["behavior"] for case in cases.values())
print("autobahn:", len(cases), "cases:", ", ".join(f"{n} {b}" for b, n in sorted(counts.items())))
bad = sorted((case_id for case_id, case in cases.items()
              if case["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")),
             key=lambda c: [int(p) for p in c.split(".")])
if bad:
    shown = " ".join(f"{c} ({cases[c]['behavior']})" for c in bad[:20])
    print("not passed:", shown + (f" and {len(bad) - 20} more" if len(bad) > 20 else ""))
    sys.exit(1)
PY
