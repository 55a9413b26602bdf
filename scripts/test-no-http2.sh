#!/usr/bin/env bash
# The build without libnghttp2 (CARPINUS_NO_HTTP2=1, what a machine without
# libnghttp2-dev gets): it must build, serve HTTP/1.1 with --http auto, and
# refuse --http 2 at start-up with a message naming the package.  Built
# in place in a scratch copy of the sources, so the main build is untouched;
# run with the main venv's Python.  Usage: scripts/test-no-http2.sh PYTHON
set -euo pipefail
# (absolute, symlinks kept: a venv's python is a symlink that must stay one)
python=$(realpath -s "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/src" "$root/setup.py" "$root/pyproject.toml" "$root/README.md" "$scratch/"
rm -f "$scratch"/src/carpinus/_core*.so
(cd "$scratch" && CARPINUS_NO_HTTP2=1 CARPINUS_WERROR=1 "$python" setup.py build_ext --inplace -q \
    >/dev/null)
export PYTHONPATH="$scratch/src"
"$python" - <<'PY'
import subprocess, sys
from carpinus import _core
assert _core.HAVE_HTTP2 == 0, "built with libnghttp2 after all"
r = subprocess.run([sys.executable, "-m", "carpinus", "--http", "2", "--port", "0"],
                   capture_output=True, text=True, timeout=30)
assert r.returncode == 2, (r.returncode, r.stderr)
assert "libnghttp2-dev" in r.stderr, r.stderr
print("no-http2 build: --http 2 refused:", r.stderr.strip().splitlines()[-1])
PY
cd "$root" && "$python" -m pytest -q -p no:cacheprovider tests/protocols/http/test_basic.py
