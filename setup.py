"""Build the C extension carpinus._core.

Environment toggles (as in msgspec's setup.py):
  CARPINUS_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer build
  CARPINUS_DEBUG=1     -O0 -g, assertions on
  CARPINUS_WERROR=1    warnings are errors (the test build sets this)
  CARPINUS_FUZZ=1      libFuzzer coverage instrumentation (-fsanitize=fuzzer-no-link;
                       build with CC=clang), for the atheris target fuzz/fuzz_protocol.py
"""

import os
import sys
from glob import glob

from setuptools import Extension, setup

SANITIZE = os.environ.get("CARPINUS_SANITIZE") == "1"
DEBUG = os.environ.get("CARPINUS_DEBUG") == "1" or SANITIZE
WERROR = os.environ.get("CARPINUS_WERROR") == "1"
FUZZ = os.environ.get("CARPINUS_FUZZ") == "1"

compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes"]
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
if FUZZ:
    compile_args.append("-fsanitize=fuzzer-no-link")
    link_args.append("-fsanitize=fuzzer-no-link")
if WERROR:
    compile_args.append("-Werror")

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
)

# Each flavour builds in its own directory: setuptools reuses an object file
# or extension in build/ when it is newer than the sources, whatever flags it
# was built with, so a sanitized install could otherwise pick up a plain one.
flavour = "-".join(name for name, on in (("sanitize", SANITIZE), ("debug", DEBUG),
                                         ("fuzz", FUZZ)) if on) or "release"
setup(ext_modules=[core], options={"build": {"build_base": os.path.join("build", flavour)}})
