#!/usr/bin/env bash
# Debian tools the test legs use: clang (libFuzzer) for the fuzz targets,
# zlib's and libnghttp2's headers (the extension links zlib for
# permessage-deflate and libnghttp2 for HTTP/2), wrk for the benchmark smoke
# test, curl and h2load (nghttp2-client) for the HTTP/2 suite and the h2
# benchmarks, chromium for
# the browser tests (WebSocket: tests/protocols/websocket/test_browser.py;
# HTTP/2: tests/protocols/http2/test_clients.py).  Installed when missing and
# we are root (as in CI); otherwise the command to run is printed and the
# fuzz leg fails (the smoke and browser tests skip themselves, saying why).
#
# With --build, only what building the extension needs (zlib's and
# libnghttp2's headers, pkg-config):
# `make serve` runs that much, so it too works on a fresh machine.
set -euo pipefail
need=()
if [ "${1:-}" != --build ] && ! (command -v clang >/dev/null 2>&1 && \
      echo 'int LLVMFuzzerTestOneInput(const char*d,long n){return 0;}' | \
      clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1); then
    need+=(clang libclang-rt-14-dev)
fi
echo '#include <zlib.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(zlib1g-dev)
# HTTP/2 (h2.c) builds on libnghttp2, found with pkg-config.  For a build it
# is optional (without it carpinus serves HTTP/1.1 only): installed when we
# can, else a warning; the test legs need it.
optional=()
command -v pkg-config >/dev/null 2>&1 || optional+=(pkg-config)
pkg-config --exists libnghttp2 2>/dev/null || optional+=(libnghttp2-dev)
if [ "$(id -u)" = 0 ] || [ "${1:-}" != --build ]; then
    need+=("${optional[@]}")
elif [ ${#optional[@]} -gt 0 ]; then
    echo "note: without ${optional[*]} carpinus builds without HTTP/2;" \
         "to serve HTTP/2: sudo apt-get install ${optional[*]}" >&2
fi
if [ "${1:-}" != --build ]; then
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    # the HTTP/2 suite's real clients: curl (built with nghttp2) and h2load
    command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
echo "installing from Debian: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${need[@]}" >/dev/null
