#!/usr/bin/env bash
# Print the path of a free-threaded CPython 3.13 (python3.13t, built with
# --disable-gil), building it first when it is not cached yet.
#
# The interpreter lives in the install prefix
# ${CARPINUS_FT_PREFIX:-$HOME/.cache/carpinus/python3.13t}; once it is there
# (and passes the check below) this script only prints its path.  Otherwise it
# takes the upstream tarball from Debian trixie's source package of python3.13
# (`apt-get source --download-only`; bookworm has no 3.13), builds it without
# PGO or LTO (a few minutes on 2 cores) and installs it into the prefix.
#
# Root is needed only for apt: to add a deb-src entry for trixie
# (/etc/apt/sources.list.d/carpinus-trixie-src.list, on the mirror the
# machine's own sources use) and to install the build dependencies.  Without
# root, with nothing cached and something missing, it fails saying what to run.
#
# With --tsan it builds (once, into its own prefix, python3.13t-tsan) the same
# interpreter with ThreadSanitizer (--with-thread-sanitizer, clang), for
# `make test-tsan`; CPython's suppressions of its own known races
# (Tools/tsan/suppressions_free_threading.txt) are installed beside it, in
# share/tsan-suppressions.txt.
#
# stdout is only the path; progress goes to stderr.  Exit status 0 with the
# path, 1 on failure.
set -euo pipefail

tsan=
if [ "${1:-}" = --tsan ]; then
    tsan=1
fi
if [ -n "$tsan" ]; then
    prefix=${CARPINUS_FT_TSAN_PREFIX:-$HOME/.cache/carpinus/python3.13t-tsan}
else
    prefix=${CARPINUS_FT_PREFIX:-$HOME/.cache/carpinus/python3.13t}
fi
python=$prefix/bin/python3.13t
suppressions=share/tsan-suppressions.txt
src_list=/etc/apt/sources.list.d/carpinus-trixie-src.list
# Debian packages the build needs, so that ssl, ctypes, zlib, sqlite3, bz2,
# lzma, readline, curses, uuid build (the check below imports the first four);
# dbm (libgdbm-dev) is left out: nothing here uses it.
build_deps=(build-essential pkg-config xz-utils libssl-dev zlib1g-dev libffi-dev
            libbz2-dev libsqlite3-dev liblzma-dev libreadline-dev libncurses-dev
            uuid-dev)
# ThreadSanitizer's runtime for clang (the compiler CPython's own TSan builds use)
if [ "${1:-}" = --tsan ]; then build_deps+=(clang libclang-rt-14-dev); fi

log() { echo "build-python-ft: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The interpreter works: the modules that need system libraries import, and
# the GIL is off (PYTHON_GIL from the caller's environment left out).  A TSan
# build runs with CPython's suppressions; its import must report nothing.
works() {
    local tsan_options=
    if [ -n "$tsan" ]; then
        [ -f "$2/$suppressions" ] || return 1
        tsan_options="suppressions=$2/$suppressions"
    fi
    [ -x "$1" ] && env -u PYTHON_GIL TSAN_OPTIONS="$tsan_options" "$1" -c \
        'import sys, ssl, ctypes, zlib, sqlite3; assert not sys._is_gil_enabled()' \
        >/dev/null 2>&1
}

if works "$python" "$prefix"; then
    echo "$python"
    exit 0
fi
[ -e "$python" ] && log "$python is there but fails the check; building it again"

# --- apt: the build dependencies and the source package -----------------------

missing=()
for pkg in "${build_deps[@]}"; do
    # shellcheck disable=SC2016  # ${Status} is dpkg-query's field, not a shell variable
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
# (grep without -q reads all of apt-cache's output: no SIGPIPE under pipefail)
have_source() { apt-cache showsrc python3.13 2>/dev/null | grep '^Version: 3\.13\.' >/dev/null; }

# The host of the machine's own Debian mirror (deb822 .sources or one-line .list).
debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
              /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' |
          grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ') || true
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ ${#missing[@]} -gt 0 ] || ! have_source; then
    if [ "$(id -u)" != 0 ]; then
        msg="no free-threaded Python in $prefix, and building one needs root for apt:"
        [ ${#missing[@]} -gt 0 ] && msg+=" missing Debian packages: ${missing[*]};"
        have_source || msg+=" no deb-src entry for trixie (python3.13's source);"
        die "$msg run this script once as root (sudo -E bash $0, keeping" \
            "CARPINUS_FT_PREFIX/HOME), or: apt-get install ${build_deps[*]}, add" \
            "'deb-src $(debian_mirror) trixie main' to $src_list and apt-get update"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! have_source && [ ! -e "$src_list" ]; then
        log "adding $src_list (deb-src $(debian_mirror) trixie main)"
        echo "deb-src $(debian_mirror) trixie main" >"$src_list"
    fi
    log "apt-get update"
    apt-get update -qq >/dev/null
    have_source || die "apt-cache showsrc python3.13 finds no 3.13 source even after apt-get update"
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing from Debian: ${missing[*]}"
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

# --- build ----------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/carpinus-python-ft.XXXXXX")
mkdir -p "$(dirname "$prefix")"
# make install goes into a staging tree beside the prefix, which replaces the
# prefix only once the staged interpreter passed the check.
stage=$(mktemp -d "$prefix.partial.XXXXXX")
cleanup() { rm -rf "$work" "$stage"; }
trap cleanup EXIT

cd "$work" || exit 1
log "downloading python3.13's source package (trixie) into $work"
# As root apt notes that _apt cannot write here and downloads unsandboxed.
apt-get source --download-only -qq python3.13 >/dev/null 2>"$work/apt-source.log" || {
    cat "$work/apt-source.log" >&2
    die "apt-get source --download-only python3.13 failed"
}
tarballs=(python3.13_*.orig.tar.xz)
[ -f "${tarballs[0]}" ] || die "no python3.13_*.orig.tar.xz among: $(ls)"
log "unpacking ${tarballs[0]}"
tar -xJf "${tarballs[0]}"
srcdir=$(find . -maxdepth 1 -type d -name 'Python-3.13*' -print -quit)
[ -n "$srcdir" ] || die "the tarball has no Python-3.13* directory"
cd "$srcdir" || exit 1

buildlog=$work/build.log
run() {
    local what=$1
    shift
    log "$what (log: $buildlog)"
    if ! "$@" >>"$buildlog" 2>&1; then
        tail -n 40 "$buildlog" >&2
        die "$what failed"
    fi
}
start=$SECONDS
# No --enable-optimizations (PGO) and no --with-lto: they would triple the
# build time.  The test package is left out (--disable-test-modules): carpinus
# runs its own tests, and byte-compiling Lib/test is a large part of install.
configure=(./configure --disable-gil --prefix="$prefix" --disable-test-modules)
if [ -n "$tsan" ]; then
    # The interpreter runs during the build and install (generating files,
    # compileall): a report there must not fail the build.
    export CC=clang TSAN_OPTIONS="exitcode=0 report_bugs=0"
    configure+=(--with-thread-sanitizer)
fi
run "${configure[*]}" "${configure[@]}"
run "make -j$(nproc)" make -j"$(nproc)"
# Extension modules the build could not make (a missing -dev package).
sed -n '/necessary bits to build these optional modules were not found/,/^$/p;
        /Following modules built successfully but were removed/,/^$/p;
        /Failed to build these modules/,/^$/p' "$buildlog" >&2
run "make install (staged)" make install DESTDIR="$stage"
staged=$stage$prefix
if [ -n "$tsan" ]; then
    unset TSAN_OPTIONS
    mkdir -p "$(dirname "$staged/$suppressions")"
    cp Tools/tsan/suppressions_free_threading.txt "$staged/$suppressions"
fi
works "$staged/bin/python3.13t" "$staged" ||
    die "the staged $staged/bin/python3.13t fails: import sys, ssl, ctypes, zlib, sqlite3;" \
        "assert not sys._is_gil_enabled()"
rm -rf "$prefix"
mv "$staged" "$prefix"
works "$python" "$prefix" || die "$python fails the check after moving it into place"
log "built $python in $((SECONDS - start)) s"
echo "$python"
