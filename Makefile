# callcore — two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv system-deps prompts lint run test test-unit asterisk-up asterisk-down asterisk-status bench clean

help:
	@echo "make run    - install, start the Asterisk sandbox and PostgreSQL, run callcore in the foreground"
	@echo "make test   - install what tests need and run the whole suite (real Asterisk, sipp, PostgreSQL)"
	@echo "make bench  - run the benchmarks in bench/"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the sandbox and the integration tests need (root on a Debian machine).
system-deps:
	bash scripts/install-system-deps.sh

# callcore's own voice prompts (nl, en) rendered with espeak-ng + sox; `asterisk up` installs them.
prompts: venv system-deps
	$(PY) -m callcore.prompts render

asterisk-up: venv system-deps
	$(VENV)/bin/callcore asterisk up

asterisk-down: venv
	$(VENV)/bin/callcore asterisk down

asterisk-status: venv
	$(VENV)/bin/callcore asterisk status

run: venv system-deps
	$(VENV)/bin/callcore asterisk up
	$(VENV)/bin/callcore run --config config/callcore.yaml

lint: venv
	$(VENV)/bin/ruff check src tests bench scripts

test: venv system-deps lint
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -q -ra tests/unit $(PYTEST_ARGS)

# All four benchmarks (docs/benchmarks.md); routing_latency needs root, the sandbox and tshark.
bench: venv system-deps
	bash scripts/install-system-deps.sh tshark
	$(PY) bench/events.py
	$(PY) bench/service_level.py
	$(PY) bench/routing_latency.py
	$(PY) bench/dialer_pacing.py

clean:
	rm -rf $(VENV) .state .pytest_cache
