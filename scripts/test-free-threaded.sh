#!/usr/bin/env bash
# The behavioural suite on a free-threaded CPython 3.13 with the GIL off
# (`make test-ft`): usage  test-free-threaded.sh [--tsan] VENV [pytest arguments].
#
# With --tsan (`make test-tsan`) the interpreter and the extension are
# ThreadSanitizer builds (build-python-ft.sh --tsan, CARPINUS_SANITIZE=thread),
# TSan writes its reports into VENV/tsan-reports/ (CPython's suppressions of
# its own known races applied, and scripts/tsan-suppressions.txt), and any report fails the run, whichever
# process -- pytest or a server it started -- made it.
#
# The interpreter comes from scripts/build-python-ft.sh (built once, cached).
# The venv gets the test and standard extras of pyproject.toml except what has
# no free-threaded 3.13 build on PyPI, and carpinus built with -Werror:
#   trustme  -- needs cryptography (Rust, cffi): no cp313t wheel.  The suite
#               issues its certificates with the openssl command instead
#               (tests/support/tls_leg.py); the tests that use trustme's
#               own API (tests/test_tls.py, test_tls_extension.py, two in
#               test_workers.py) are skipped and say why.
#   uvloop   -- no cp313t wheel and no free-threading support: the suite's
#               uvloop variants are skipped (tests/conftest.py).
# pydantic-core (FastAPI's) must come as a wheel: its newest releases have no
# cp313t wheel, and their source needs a Rust toolchain and crates.io.  The
# lint tools are left out (`make lint` runs them in the main venv).  PYTHON_GIL=0 keeps the GIL off whatever an extension declares;
# tests/test_free_threading.py checks in a fresh interpreter without it that
# importing and serving with carpinus leaves the GIL off.
set -euo pipefail
cd "$(dirname "$0")/.."

tsan=
if [ "${1:-}" = --tsan ]; then
    tsan=--tsan
    shift
    # Until the test run: the interpreter runs pip and the build, where a
    # report is not ours to judge.
    export TSAN_OPTIONS="exitcode=0 report_bugs=0"
fi
venv=${1:?usage: $0 [--tsan] VENV [pytest arguments]}
shift
python=$(bash scripts/build-python-ft.sh $tsan)
echo "test-ft: $python ($("$python" -VV | head -n 1))"

test -x "$venv/bin/python" || "$python" -m venv "$venv"
mapfile -t requirements < <("$venv/bin/python" - <<'EOF'
import re
import tomllib

WITHOUT = {"trustme", "uvloop",  # no free-threaded 3.13 build (see above)
           "ruff", "mypy", "types-pyyaml"}  # lint: `make lint`, in the main venv
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["test"] + extras["standard"]:
    name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
    if name not in WITHOUT:
        print(requirement)
EOF
)
pip=("$venv/bin/pip" install --disable-pip-version-check -q)
"${pip[@]}" --prefer-binary --only-binary pydantic-core "${requirements[@]}"
CARPINUS_SANITIZE=${tsan:+thread} CARPINUS_WERROR=1 "${pip[@]}" --no-deps --force-reinstall .

export PYTHON_GIL=0
# uvloop is not installed: the tests that take the loop as a parameter run
# on asyncio's only (tests/support/servers.py), instead of skipping hundreds.
export CARPINUS_TEST_LOOPS=asyncio
if [ -z "$tsan" ]; then
    "$venv/bin/python" -c 'import sys, carpinus._core; assert not sys._is_gil_enabled()'
    exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
fi

reports=$PWD/$venv/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
# TSan takes one suppressions file: CPython's, then ours (scripts/tsan-suppressions.txt).
suppressions=$reports/suppressions.txt
cat "$(dirname "$(dirname "$python")")/share/tsan-suppressions.txt" scripts/tsan-suppressions.txt \
    >"$suppressions"
# exitcode=0: a report must not pass for a test's failure (a server process
# exiting 66); the reports are judged below, all together.
export TSAN_OPTIONS="suppressions=$suppressions log_path=$reports/report exitcode=0 \
second_deadlock_stack=1"
status=0
"$venv/bin/python" -c 'import sys, carpinus._core; assert not sys._is_gil_enabled()' || status=$?
[ "$status" = 0 ] && { "$venv/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?; }
if compgen -G "$reports/report.*" >/dev/null; then
    cat "$reports"/report.* >&2
    echo "test-tsan: ThreadSanitizer reported $(cat "$reports"/report.* | grep -c '^WARNING: ThreadSanitizer') race(s) or error(s) ($reports)" >&2
    exit 1
fi
echo "test-tsan: no ThreadSanitizer report"
exit "$status"
