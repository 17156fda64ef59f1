# The targets a newcomer, a developer and CI run. Everything goes through .venv so that a fresh
# machine needs only Python; the stamp files reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-cluster config-reference lint format typecheck bench services schema clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## The main job: a real exchange between Thanh Hóa agencies on the embedded default.
demo: $(VENV)/.installed
	$(BIN)/lgsp-adapter demo

## The whole suite: lint and types first, then tests against real RabbitMQ and PostgreSQL.
test: $(VENV)/.installed-dev services lint
	$(BIN)/pytest

## The tests on extra brokers, started together beside the one on 5672 (root and Debian's
## rabbitmq-server): one node of a three-node cluster killed mid-stream (scripts/rabbitmq-cluster.sh),
## and three separate buses joined by bridges (scripts/rabbitmq-buses.sh). Removed afterwards.
test-cluster: $(VENV)/.installed-dev services
	bash scripts/rabbitmq-cluster.sh stop; bash scripts/rabbitmq-buses.sh stop
	bash scripts/rabbitmq-buses.sh start >/dev/null & buses=$$!; \
	bash scripts/rabbitmq-cluster.sh start >/dev/null; cluster=$$?; wait $$buses; started=$$?; \
	if [ $$cluster -ne 0 ] || [ $$started -ne 0 ]; then \
		bash scripts/rabbitmq-cluster.sh stop; bash scripts/rabbitmq-buses.sh stop; exit 1; fi; \
	$(BIN)/pytest -m "cluster or buses"; status=$$?; \
	bash scripts/rabbitmq-cluster.sh stop; bash scripts/rabbitmq-buses.sh stop; exit $$status

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Makes sure RabbitMQ (5672) and PostgreSQL (5432) listen on loopback, starting local ones if it can.
services:
	bash scripts/ensure-services.sh

## Regenerates docs/configuration.md from the settings model (a test checks it is current).
config-reference: $(VENV)/.installed
	$(BIN)/python -m lgsp_adapter.daemon.config_reference > docs/configuration.md

## Regenerates the published JSON Schema of the tax–transport packets.
schema: $(VENV)/.installed
	$(BIN)/python -m lgsp_adapter.packets.tax_transport > docs/schema/tax-transport-v1.schema.json

## The published figures (docs/performance.md): RabbitMQ must be running. BENCH_SECONDS shortens.
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py --seconds $(or $(BENCH_SECONDS),10)
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/signatures.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
