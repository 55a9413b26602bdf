#!/usr/bin/env bash
# libFuzzer comes with clang; install clang and its runtime from Debian if absent.
set -euo pipefail
if command -v clang >/dev/null 2>&1 && \
   echo 'int LLVMFuzzerTestOneInput(const char*d,long n){return 0;}' | \
   clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "clang with libFuzzer is missing; run: sudo apt-get install clang libclang-rt-14-dev" >&2
    exit 1
fi
echo "installing clang and libclang-rt-14-dev from Debian for the fuzz targets" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
