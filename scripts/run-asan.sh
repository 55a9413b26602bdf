#!/usr/bin/env bash
# Run a command with the ASan runtime preloaded, for a Python whose extension
# was built with CARPINUS_SANITIZE=1.  Python itself is not instrumented, so
# the runtime must be loaded first; PYTHONMALLOC=malloc lets ASan see every
# allocation.  Leak checking is off here: the interpreter keeps objects alive
# at exit by design (the soak test and valgrind cover leaks).
set -euo pipefail
asan_lib=$(gcc -print-file-name=libasan.so)
ubsan_lib=$(gcc -print-file-name=libubsan.so)
export LD_PRELOAD="$asan_lib:$ubsan_lib"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export CARPINUS_SANITIZED=1
exec "$@"
