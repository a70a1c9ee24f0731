# 晨读: `make run` serves the site with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
FLASK  := $(BIN)/flask --app app

.PHONY: run test test-pg bench lint browser clean

run: $(VENV)/.installed
	$(FLASK) db upgrade
	$(FLASK) demo load
	@echo "晨读 is at http://$(HOST):$(PORT)/"
	$(FLASK) run --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test browser
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

# The whole suite again on a throwaway PostgreSQL cluster on 127.0.0.1.
test-pg: $(VENV)/.installed-test browser
	bash tests/tools/with_postgres.sh $(BIN)/pytest $(PYTEST_ARGS)

# Every benchmark of docs/BENCHMARKS.md, one after another (about an hour); writes and prints
# bench/RESULTS.md. The PostgreSQL rows run on a throwaway cluster on 127.0.0.1.
bench: $(VENV)/.installed-bench browser
	bash tests/tools/ensure_wrk.sh
	bash tests/tools/ensure_lighthouse.sh
	bash tests/tools/with_postgres.sh $(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

browser:
	@bash tests/tools/ensure_chromium.sh
	@bash tests/tools/ensure_nginx.sh
	@bash tests/tools/ensure_wrk.sh

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (PYTHON=$(PYTHON))" >&2; exit 1; }
	@# Debian's python3 comes without venv support until python3-venv is installed.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
		else echo "Python's venv module is missing: sudo apt-get install python3-venv" >&2; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

clean:
	rm -rf $(VENV) test-results .pytest_cache .ruff_cache
