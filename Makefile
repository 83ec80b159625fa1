# The project's verbs. `make run` and `make test` need only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration lint bench lock clean

help: ## List the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

install: $(STAMP) ## Create .venv with the pinned dependencies

run: $(STAMP) ## Start Redis, auth, wallet, catalog and the gateway on :8000 (Ctrl-C stops)
	$(PY) -m devstack

test: $(STAMP) ## Unit tests, then the integration suite against the real stack
	$(PY) -m pytest

test-unit: $(STAMP) ## Only the unit tests
	$(PY) -m pytest tests/unit

test-integration: $(STAMP) ## Only the integration suite
	$(PY) -m pytest tests/integration

bench: $(STAMP) ## Load each operation through the gateway: req/s, latency, CPU/request vs calibration, RSS
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt -c requirements.lock
	$(PY) -m bench

lint: $(STAMP) ## Static checks (ruff)
	$(VENV)/bin/ruff check .

lock: ## Re-pin requirements.lock from requirements.txt
	rm -rf /tmp/wallet-lock-venv && $(PYTHON) -m venv /tmp/wallet-lock-venv
	/tmp/wallet-lock-venv/bin/pip install --quiet -r requirements.txt
	/tmp/wallet-lock-venv/bin/pip freeze > requirements.lock

clean: ## Remove .venv and .data (all local users and balances)
	rm -rf $(VENV) .data
