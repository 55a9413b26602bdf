"""Build the C extension carpinus._core.

Environment toggles (as in msgspec's setup.py):
  CARPINUS_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer build
  CARPINUS_SANITIZE=thread
                       ThreadSanitizer build, for an interpreter built with TSan
                       (scripts/build-python-ft.sh --tsan; make test-tsan)
  CARPINUS_DEBUG=1     -O0 -g, assertions on
  CARPINUS_WERROR=1    warnings are errors (the test build sets this)
  CARPINUS_FUZZ=1      libFuzzer coverage instrumentation (-fsanitize=fuzzer-no-link;
                       build with CC=clang), for the atheris target fuzz/fuzz_protocol.py
  CARPINUS_NO_HTTP2=1  build without libnghttp2 even when pkg-config finds it (HTTP/1.1
                       only; what a machine without libnghttp2-dev gets)

HTTP/2 (h2.c) is built on libnghttp2, found with pkg-config; without it the
extension still builds and serves HTTP/1.1, and --http 2 fails at start-up.
"""

import os
import shutil
import subprocess
import sys
from glob import glob

from setuptools import Extension, setup

SANITIZE = os.environ.get("CARPINUS_SANITIZE") == "1"
THREAD_SANITIZE = os.environ.get("CARPINUS_SANITIZE") == "thread"
DEBUG = os.environ.get("CARPINUS_DEBUG") == "1" or SANITIZE
WERROR = os.environ.get("CARPINUS_WERROR") == "1"
FUZZ = os.environ.get("CARPINUS_FUZZ") == "1"

# -fvisibility=hidden: the module exports PyInit__core alone (PyMODINIT_FUNC
# says so), so a cp_* function is called directly, and may be inlined in its
# own file like a static one, instead of through the PLT every time.
compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
                "-fvisibility=hidden"]
link_args = []
undef_macros = []
if DEBUG:
    compile_args += ["-O0", "-g3", "-fno-omit-frame-pointer"]
    undef_macros.append("NDEBUG")
else:
    compile_args += ["-O2"]
if SANITIZE:
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    compile_args += flags
    link_args += flags
if THREAD_SANITIZE:
    # -O1: TSan's own advice (fast enough, stacks still readable)
    compile_args += ["-fsanitize=thread", "-O1", "-g", "-fno-omit-frame-pointer"]
    link_args.append("-fsanitize=thread")
if FUZZ:
    compile_args.append("-fsanitize=fuzzer-no-link")
    link_args.append("-fsanitize=fuzzer-no-link")
if WERROR:
    compile_args.append("-Werror")



def pkg_config(package: str) -> tuple[list[str], list[str]] | None:
    """(compile flags, link flags) of an installed package, or None."""
    if shutil.which("pkg-config") is None:
        return None
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", package], check=True,
                                capture_output=True, text=True).stdout.split()
        libs = subprocess.run(["pkg-config", "--libs", package], check=True,
                              capture_output=True, text=True).stdout.split()
    except subprocess.CalledProcessError:
        return None
    return cflags, libs


define_macros = []
nghttp2 = None if os.environ.get("CARPINUS_NO_HTTP2") == "1" else pkg_config("libnghttp2")
if nghttp2 is not None:
    define_macros.append(("CP_HAVE_NGHTTP2", "1"))
    compile_args += nghttp2[0]
    link_args += nghttp2[1]
else:
    print("carpinus: libnghttp2 not found (pkg-config libnghttp2): building without HTTP/2",
          file=sys.stderr)

if sys.platform == "win32":  # MSVC understands none of the above
    compile_args, link_args = [], []

core = Extension(
    "carpinus._core",
    sources=sorted(glob("src/carpinus/_core/*.c")),
    depends=sorted(glob("src/carpinus/_core/*.h")),
    libraries=["z"],  # zlib: permessage-deflate in wsframe.c
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    undef_macros=undef_macros,
    define_macros=define_macros,
)

# Each flavour builds in its own directory: setuptools reuses an object file
# or extension in build/ when it is newer than the sources, whatever flags it
# was built with, so a sanitized install could otherwise pick up a plain one.
flavour = "-".join(name for name, on in (("sanitize", SANITIZE), ("tsan", THREAD_SANITIZE),
                                         ("debug", DEBUG),
                                         ("nohttp2", nghttp2 is None),
                                         ("fuzz", FUZZ)) if on) or "release"
setup(ext_modules=[core], options={"build": {"build_base": os.path.join("build", flavour)}})
