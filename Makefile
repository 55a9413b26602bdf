# carpinus — every set-up step lives here, so a fresh machine needs only `make`.
#
#   make serve     build, then serve the bundled demo app on http://127.0.0.1:8000
#   make test      build with -Werror and run every test: ruff + mypy, the suite on 3.11,
#                  the C parser tests, the suite again under ASan+UBSan, a short
#                  fuzz run, and the suite on pyenv's 3.12/3.13 when present
#
# Environment: PYTHON (interpreter for the main venv), FUZZ_SECONDS, PYTEST_ARGS.

PYTHON ?= python3
VENV ?= .venv
VENV_ASAN ?= .venv-asan
VENV_NEXT ?= .venv-next
FUZZ_SECONDS ?= 20
PYTEST_ARGS ?=
PIP_FLAGS ?= --disable-pip-version-check -q
HOST ?= 127.0.0.1
PORT ?= 8000

SOURCES := $(wildcard src/carpinus/_core/*.c src/carpinus/_core/*.h) setup.py pyproject.toml

.PHONY: serve tools test test-main test-opts-off test-c test-asan test-next fuzz fuzz-smoke bench lint clean

serve: $(VENV)/.built
	$(VENV)/bin/carpinus --host $(HOST) --port $(PORT)

# A venv with carpinus (editable), uvloop and the test tools, built with -Werror.
$(VENV)/.built: $(SOURCES)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	CARPINUS_WERROR=1 $(VENV)/bin/pip install $(PIP_FLAGS) -e '.[test,standard]'
	touch $@

test: tools lint test-main test-opts-off test-c test-asan fuzz-smoke test-next
	@echo "all test legs passed"

tools:
	bash scripts/ensure-tools.sh

test-main: $(VENV)/.built
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The behavioural suite again with every marshalling optimization switched off.
test-opts-off: $(VENV)/.built
	CARPINUS_TEST_OPTIMIZATIONS=off $(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The parser's own C tests (gcc, -Werror, ASan+UBSan).
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

# libFuzzer needs clang (installed from Debian by `tools` when missing).
fuzz-smoke: tools
	$(MAKE) -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz: tools
	$(MAKE) -C fuzz run FUZZ_SECONDS=$${FUZZ_SECONDS:-600}

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

# The wrk benchmark suite against uvicorn, granian & co (see benchmarks/README.md).
$(VENV)-bench/.built: $(SOURCES)
	test -x $(VENV)-bench/bin/python || $(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/pip install $(PIP_FLAGS) -e '.[bench]'
	touch $@

bench: $(VENV)-bench/.built
	$(VENV)-bench/bin/python benchmarks/run.py $(BENCH_ARGS)

lint: $(VENV)/.built
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf build dist src/*.egg-info src/carpinus/*.so $(VENV) $(VENV_ASAN) $(VENV_NEXT)
	$(MAKE) -C fuzz clean
