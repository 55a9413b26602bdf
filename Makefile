# carpinus — every set-up step lives here, so a fresh machine needs only `make`.
#
#   make serve     build, then serve the bundled demo app on http://127.0.0.1:8000
#   make test      build with -Werror and run every test: ruff + mypy, the suite on 3.11,
#                  the behavioural suite with optimizations off, with all of them on
#                  (lazy_headers too) and over TLS, the build without libnghttp2,
#                  the C parser tests, the suite again under ASan+UBSan, a short
#                  fuzz run, and the suite on pyenv's 3.12/3.13 when present
#
# Environment: PYTHON (interpreter for the main venv), FUZZ_SECONDS, PYTEST_ARGS.

PYTHON ?= python3
VENV ?= .venv
VENV_ASAN ?= .venv-asan
VENV_NEXT ?= .venv-next
VENV_FUZZ ?= .venv-fuzz
VENV_FT ?= .venv-ft
VENV_TSAN ?= .venv-tsan
FUZZ_SECONDS ?= 20
# the end-to-end target's share of `make fuzz-smoke` (part of `make test`)
PROTOCOL_SMOKE_SECONDS ?= 15
# and the HTTP/2 end-to-end target's (fuzz/fuzz_h2.py)
H2_SMOKE_SECONDS ?= 15
SOAK_SECONDS ?= 600
PYTEST_ARGS ?=
PIP_FLAGS ?= --disable-pip-version-check -q
HOST ?= 127.0.0.1
PORT ?= 8000

SOURCES := $(wildcard src/carpinus/_core/*.c src/carpinus/_core/*.h) setup.py pyproject.toml

.PHONY: serve tools test test-main test-opts-off test-lazy-headers test-tls test-no-http2 test-c \
	test-asan test-next fuzz fuzz-smoke test-valgrind soak differential bench bench-ws autobahn \
	test-autobahn python-ft test-ft test-tsan \
	lint clean

serve: $(VENV)/.built
	$(VENV)/bin/carpinus --host $(HOST) --port $(PORT)

# A venv with carpinus (editable), uvloop and the test tools, built with -Werror.
$(VENV)/.built: $(SOURCES)
	bash scripts/ensure-tools.sh --build
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	CARPINUS_WERROR=1 $(VENV)/bin/pip install $(PIP_FLAGS) -e '.[test,standard]'
	touch $@

test: tools lint test-main test-opts-off test-lazy-headers test-tls test-no-http2 test-c \
	test-autobahn test-asan fuzz-smoke test-next test-ft
	@echo "all test legs passed"

tools:
	bash scripts/ensure-tools.sh

test-main: $(VENV)/.built
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The behavioural suite again with every marshalling optimization switched off
# (tests/conftest.py keeps the tests whose in-process server takes the switches).
test-opts-off: $(VENV)/.built
	CARPINUS_TEST_OPTIMIZATIONS=off $(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The same tests again with every optimization switched on, lazy_headers (off
# by default) included: its C code (headers_lazy.c) then serves every request
# that has a header (tests/support/servers.py apply_optimizations_leg).
test-lazy-headers: $(VENV)/.built
	CARPINUS_TEST_OPTIMIZATIONS=all $(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The behavioural suite again over HTTPS: servers the tests start get a trustme
# certificate, their clients trust its CA (tests/support/tls_leg.py says which tests).
test-tls: $(VENV)/.built
	CARPINUS_TEST_TLS=1 $(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The build without libnghttp2 still builds and serves HTTP/1.1, and --http 2
# says which package it lacks (scripts/test-no-http2.sh).
test-no-http2: $(VENV)/.built
	bash scripts/test-no-http2.sh $(VENV)/bin/python

# The wire floor's own C tests: parser, writer, WebSocket codec (gcc, -Werror,
# ASan+UBSan); the parser's cases are the request spec (tests/spec/, written out
# as a C header by fuzz/Makefile).
test-c:
	$(MAKE) -C fuzz test

# The behavioural suite against an ASan+UBSan build of the extension.
$(VENV_ASAN)/.built: $(SOURCES)
	test -x $(VENV_ASAN)/bin/python || $(PYTHON) -m venv $(VENV_ASAN)
	$(VENV_ASAN)/bin/pip install $(PIP_FLAGS) '.[test,standard]'
	CARPINUS_SANITIZE=1 CARPINUS_WERROR=1 $(VENV_ASAN)/bin/pip install $(PIP_FLAGS) \
		--force-reinstall --no-deps .
	touch $@

test-asan: $(VENV_ASAN)/.built
	bash scripts/run-asan.sh $(VENV_ASAN)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# libFuzzer needs clang (installed from Debian by `tools` when missing).  The
# end-to-end target runs under atheris against a clang ASan+UBSan build of the
# extension with libFuzzer coverage (fuzz/Makefile explains the set-up).
$(VENV_FUZZ)/.built: $(SOURCES)
	test -x $(VENV_FUZZ)/bin/python || $(PYTHON) -m venv $(VENV_FUZZ)
	CC=clang CARPINUS_FUZZ=1 CARPINUS_SANITIZE=1 CARPINUS_WERROR=1 \
		$(VENV_FUZZ)/bin/pip install $(PIP_FLAGS) --force-reinstall '.[fuzz]'
	touch $@

fuzz-smoke: tools $(VENV_FUZZ)/.built
	$(MAKE) -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)
	$(MAKE) -C fuzz run-protocol PYTHON_FUZZ=$(abspath $(VENV_FUZZ))/bin/python \
		PROTOCOL_SECONDS=$(PROTOCOL_SMOKE_SECONDS)
	$(MAKE) -C fuzz run-h2 PYTHON_FUZZ=$(abspath $(VENV_FUZZ))/bin/python \
		H2_SECONDS=$(H2_SMOKE_SECONDS)

# Every target for FUZZ_SECONDS each (default 600).
fuzz: tools $(VENV_FUZZ)/.built
	$(MAKE) -C fuzz run FUZZ_SECONDS=$${FUZZ_SECONDS:-600}
	$(MAKE) -C fuzz run-protocol PYTHON_FUZZ=$(abspath $(VENV_FUZZ))/bin/python \
		PROTOCOL_SECONDS=$${FUZZ_SECONDS:-600}
	$(MAKE) -C fuzz run-h2 PYTHON_FUZZ=$(abspath $(VENV_FUZZ))/bin/python \
		H2_SECONDS=$${FUZZ_SECONDS:-600}

# The parser corpus through carpinus, h11 and httptools (docs/reliability.md).
differential: $(VENV)/.built
	$(VENV)/bin/python -m fuzz.differential

# A subset of the suite under valgrind --leak-check=full (a few minutes; not
# part of `make test`).  Fails on a definite leak with a carpinus frame.
test-valgrind: $(VENV)/.built
	bash scripts/run-valgrind.sh $(VENV)/bin/python

# Mixed load against one server process for SOAK_SECONDS (default 600),
# sampling its RSS and open fds (docs/reliability.md).
soak: $(VENV)/.built
	$(VENV)/bin/python -m scripts.soak --seconds $(SOAK_SECONDS) --out soak-report.json

# The suite on a newer interpreter (eager tasks), if pyenv has one.
test-next:
	@next=$$(bash scripts/find-next-python.sh); \
	if [ -z "$$next" ]; then \
		echo "test-next: no Python 3.12 or 3.13 found (pyenv); this leg is skipped"; \
	else \
		echo "test-next: running the suite on $$next"; \
		test -x $(VENV_NEXT)/bin/python || $$next -m venv $(VENV_NEXT); \
		CARPINUS_WERROR=1 $(VENV_NEXT)/bin/pip install $(PIP_FLAGS) '.[test,standard]' && \
		$(VENV_NEXT)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS); \
	fi

# A free-threaded CPython 3.13 (python3.13t, --disable-gil), built once from
# Debian trixie's python3.13 source and cached; prints its path
# (scripts/build-python-ft.sh; CARPINUS_FT_PREFIX moves the cache).  Not part of `make test`.
python-ft:
	@bash scripts/build-python-ft.sh

# The behavioural suite on that free-threaded Python with PYTHON_GIL=0, in its
# own venv (what has no free-threaded build is left out and its tests say so:
# scripts/test-free-threaded.sh).
test-ft:
	bash scripts/test-free-threaded.sh $(VENV_FT) $(PYTEST_ARGS)

# The concurrency tests (servers on several threads, one server on several
# loops: requests, WebSockets, shutdown) on ThreadSanitizer builds of that
# interpreter and of the extension; any report fails (docs/reliability.md).
# Not part of `make test`: the first run builds a second interpreter.
TSAN_TESTS ?= tests/test_free_threading.py tests/test_threads.py
test-tsan:
	bash scripts/test-free-threaded.sh --tsan $(VENV_TSAN) $(TSAN_TESTS) $(PYTEST_ARGS)

# The wrk benchmark suite against uvicorn, granian & co (see benchmarks/README.md).
$(VENV)-bench/.built: $(SOURCES)
	test -x $(VENV)-bench/bin/python || $(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/pip install $(PIP_FLAGS) -e '.[bench]'
	touch $@

bench: $(VENV)-bench/.built
	$(VENV)-bench/bin/python benchmarks/run.py $(BENCH_ARGS)

# WebSocket echo, 16 B and 16 KiB JSON, with and without permessage-deflate, against
# uvicorn's three WebSocket implementations and granian (docs/benchmarks.md).
WS_BENCH_SERVERS ?= carpinus,uvicorn,uvicorn-websockets,uvicorn-wsproto,granian
WS_BENCH_WORKLOADS ?= websocket,websocket-deflate,websocket16k,websocket16k-deflate
bench-ws: $(VENV)-bench/.built
	$(VENV)-bench/bin/python benchmarks/run.py --servers $(WS_BENCH_SERVERS) \
		--workloads $(WS_BENCH_WORKLOADS) --duration 5 --warmup 1 --rounds 3 $(BENCH_ARGS)

# The Autobahn TestSuite's cases, driven by kosoku (PyPI, in a venv of its own),
# against the demo app's /ws echo (docs/websocket.md): every case of every
# section, one at a time (the cases' own time limits assume a client with a
# core to itself), about 5 minutes; a case neither OK, NON-STRICT nor
# INFORMATIONAL fails the leg.  `make autobahn AUTOBAHN_ARGS=...` picks cases;
# AUTOBAHN_SERVER runs another server (scripts/autobahn.sh).
VENV_AUTOBAHN ?= .venv-autobahn
AUTOBAHN_PORT ?= 9001
AUTOBAHN_ARGS ?= -p 1
$(VENV_AUTOBAHN)/.built:
	test -x $(VENV_AUTOBAHN)/bin/python || $(PYTHON) -m venv $(VENV_AUTOBAHN)
	$(VENV_AUTOBAHN)/bin/pip install $(PIP_FLAGS) kosoku
	touch $@

autobahn: $(VENV)/.built $(VENV_AUTOBAHN)/.built
	bash scripts/autobahn.sh $(VENV)/bin/python $(VENV_AUTOBAHN)/bin/kosoku $(AUTOBAHN_PORT) \
		$(AUTOBAHN_ARGS)

test-autobahn: autobahn

lint: $(VENV)/.built
	$(VENV)/bin/ruff check src tests benchmarks fuzz scripts
	$(VENV)/bin/mypy

clean:
	rm -rf build dist src/*.egg-info src/carpinus/*.so $(VENV) $(VENV_ASAN) $(VENV_NEXT) $(VENV_FUZZ) \
		$(VENV_FT) $(VENV_TSAN)
	$(MAKE) -C fuzz clean
