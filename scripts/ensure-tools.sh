#!/usr/bin/env bash
# Debian tools the test legs use: clang (libFuzzer) for the fuzz targets,
# zlib's headers (the extension links zlib for permessage-deflate), wrk
# for the benchmark smoke test and chromium for the browser WebSocket test
# (tests/protocols/websocket/test_browser.py).  Installed when missing and we
# are root (as in CI); otherwise the command to run is printed and the fuzz
# leg fails (the smoke and browser tests skip themselves, saying why).
#
# With --build, only what building the extension needs (zlib's headers):
# `make serve` runs that much, so it too works on a fresh machine.
set -euo pipefail
need=()
if [ "${1:-}" != --build ] && ! (command -v clang >/dev/null 2>&1 && \
      echo 'int LLVMFuzzerTestOneInput(const char*d,long n){return 0;}' | \
      clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1); then
    need+=(clang libclang-rt-14-dev)
fi
echo '#include <zlib.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(zlib1g-dev)
[ "${1:-}" = --build ] || command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ "${1:-}" = --build ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
echo "installing from Debian: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${need[@]}" >/dev/null
