#!/usr/bin/env bash
# Run a subset of the test suite under valgrind memcheck with full leak
# checking, then fail if valgrind saw a definite leak or a memory error with a
# frame in carpinus' C core (scripts/valgrind_report.py reads its XML).
#
#   bash scripts/run-valgrind.sh PYTHON [pytest arguments]
#
# PYTHONMALLOC=malloc sends every Python allocation through malloc, so that
# valgrind sees each object; CPython's own leftovers at exit are filtered out
# (scripts/valgrind-python.supp, and the carpinus-frame rule).  Only the
# asyncio loop: uvloop is not what this checks.  VALGRIND_TESTS overrides the
# subset; the XML goes to valgrind-pytest.xml at the top of the repository.
# One test is left out: it measures that sleeps overlap, which valgrind's
# slowness makes meaningless.
set -euo pipefail
python=${1:?usage: run-valgrind.sh PYTHON [pytest arguments]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
xml=${VALGRIND_XML:-$root/valgrind-pytest.xml}
tests=${VALGRIND_TESTS:-tests/protocols/http/test_basic.py tests/protocols/http/test_app.py tests/protocols/http/test_faults.py tests/protocols/http/test_smuggling.py}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
export PYTHONMALLOC=malloc CARPINUS_TEST_LOOPS=asyncio
status=0
# shellcheck disable=SC2086
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=50 \
    --suppressions="$here/valgrind-python.supp" \
    --xml=yes --xml-file="$xml" \
    "$python" -m pytest -p no:cacheprovider -q --timeout=900 $tests \
    --deselect "tests/protocols/http/test_basic.py::test_concurrent_sleeps_run_concurrently" \
    "$@" || status=$?
"$python" "$here/valgrind_report.py" "$xml" || status=1
exit $status
