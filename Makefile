# Two commands matter: `make demo` and `make test`. Both set up .venv/ first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGE_STAMP := $(VENV)/.installed-package

.PHONY: install package browser postgres demo test bench clean

# The package and its run-time dependencies, nothing else: all `make demo` needs.
# Re-installs only when the project's set-up files change.
package: $(PACKAGE_STAMP)

$(PACKAGE_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(PACKAGE_STAMP)

# The package plus the test extra (pytest, hypothesis, selenium, tensorboard, onnx, dask, ...):
# what `make test` needs, and the environment to develop in.
install: $(STAMP)

$(STAMP): $(PACKAGE_STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Headless Chromium and its driver, from the system packages, for the report's browser tests.
# (A browser that a Python package downloads cannot be fetched here.) Skipped when present.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium chromium-driver; \
	elif command -v sudo >/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends chromium chromium-driver; \
	else echo "no chromium: the browser tests will be skipped (install chromium and chromium-driver)"; fi

# Debian's PostgreSQL server, for the tests of a tuning study shared by several workers
# (tests/test_tune_postgres.py starts its own server in a temporary folder). Skipped when present.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
	elif command -v sudo >/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends postgresql; \
	else echo "no postgresql: the shared-study tests will be skipped (install postgresql)"; fi

demo: package
	$(BIN)/torchann demo

test: install browser postgres
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
