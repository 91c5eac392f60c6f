# hashwatt: `make demo` runs the whole chain on a local simulated farm, `make test` runs the tests.
# Both install what they need: Debian packages with apt-get, Python packages into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DURATION ?=
# binary:package pairs of the real services the tests and the demo start (and poppler-utils,
# whose pdftoppm/pdftotext the statement tests render PDFs with, and faketime, whose
# libfaketime steps one collector's clock in tests/test_clock_step.py)
SERVICES := mosquitto:mosquitto influxd:influxdb victoria-metrics:victoria-metrics snmpbulkwalk:snmp \
  pdftoppm:poppler-utils faketime:faketime

.PHONY: all test soak operator-day finance-check demo bench dashboards lint layers typecheck unit system-deps venv clean

all: test

system-deps:
	@need=""; \
	for pair in $(SERVICES); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$bin >/dev/null 2>&1 || need="$$need $$pkg"; \
	done; \
	if [ -n "$$need" ]; then \
	  echo "installing Debian packages:$$need"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$need; \
	fi

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,sim]'
	touch $@

venv: $(BIN)/.installed

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,sim,bench]'
	touch $@

lint: venv
	$(BIN)/ruff check hashwatt collector exporters dashboards sim bench tests

# the import layers declared in pyproject.toml [tool.importlinter] (ARCHITECTURE.md "Layers")
layers: venv
	$(BIN)/lint-imports --no-cache

typecheck: venv
	$(BIN)/mypy

dashboards: venv
	$(BIN)/python -m dashboards.build

test: system-deps venv lint layers typecheck
	$(BIN)/python -m dashboards.build --check
	$(BIN)/pytest -q

# the seeded chaos soak and the long forms of the drills (README "Reliability drills");
# `make test` runs a 30 s soak and the short forms
SEED ?= 1
soak: system-deps venv
	HASHWATT_SOAK_SEED=$(SEED) HASHWATT_DRILL_SEED=$(SEED) HASHWATT_DRILL_LONG=1 \
	  HASHWATT_SOAK_SECONDS=$(or $(DURATION),600) \
	  $(BIN)/pytest -q -s -p no:cacheprovider tests/test_soak.py tests/test_influx_faults.py \
	  tests/test_clock_step.py tests/test_hostile_input.py

# the operator's day (tests/test_operator_day.py) on the 300 rigs issue 15 names; `make test`
# runs it on 60
operator-day: system-deps venv
	HASHWATT_OPERATOR_RIGS=$(or $(RIGS),300) $(BIN)/pytest -q -p no:cacheprovider \
	  tests/test_operator_day.py

# the finance files opened as a finance user would: LibreOffice (Debian's headless Calc)
# evaluates the XLSX totals and reads the CSV; `make test` skips that part when it is absent
finance-check: system-deps venv
	command -v soffice >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get install -y --no-install-recommends libreoffice-calc-nogui; }
	$(BIN)/pytest -q tests/test_finance_outputs.py tests/test_billing_recompute.py

demo: system-deps venv
	$(BIN)/hashwatt demo $(if $(DURATION),--duration $(DURATION))

# benchmarks print ratios against a baseline measured in the same run (see BENCHMARKS.md)
bench: system-deps venv $(BIN)/.bench-installed
	$(BIN)/python -m bench.rigs --rigs 2000 --sample 140
	$(BIN)/python -m bench.rigs --rigs 10000 --memory-only --base 127.80.0.0
	$(BIN)/python -m bench.corpus --polls 40
	$(BIN)/python -m bench.exporter --messages 20000
	$(BIN)/python -m bench.latency --rigs 2000 --interval 10 --seconds 60
	$(BIN)/python -m bench.pdu --pdus 200 --outlets 24 --rounds 3

clean:
	rm -rf $(VENV) .hashwatt-demo .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
