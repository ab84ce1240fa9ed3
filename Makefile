# govdeploy — two commands from a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev-lock.txt

CHROMIUM := /usr/bin/chromium

.PHONY: demo test test-unit up down status lint lock bench bench-drift bench-signing clean chromium

$(STAMP): $(LOCK) $(DEV_LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
	  -r $(LOCK) -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

## demo: install, start the local stack, run the end-to-end scenario (the stack keeps running)
demo: $(STAMP)
	$(VENV)/bin/govdeploy demo

## test: install, then lint, type-check, check compliance of the shipped config (no server needed)
## and run the whole test suite (starts its own servers)
test: $(STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/govdeploy compliance check
	$(PY) -m pytest -q -ra

## chromium: Debian's browser, which tests/flows/test_approver_view.py drives through the Prefect UI
## (installed once, when missing)
chromium:
	@test -x $(CHROMIUM) || { apt-get update && apt-get install -y chromium; }

## test-unit: only the tests that start no server
test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not e2e"

up: $(STAMP)
	$(VENV)/bin/govdeploy up

down: $(STAMP)
	$(VENV)/bin/govdeploy down

status: $(STAMP)
	$(VENV)/bin/govdeploy status

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

## bench: gateway vs Seldon MLServer (adaptive batching, its own venv made on the first run) and
## `mlflow models serve` (needs the stack with a champion: run `make demo` first, and wrk)
bench: $(STAMP)
	$(PY) benchmarks/serving.py

## bench-drift: the drift decision vs a plain Evidently DataDriftPreset run, 1M rows x 12 columns
bench-drift: $(STAMP)
	$(PY) -m benchmarks.drift

## bench-signing: sign + digest and verify of 1, 4 and 16 GB model directories vs one all-core SHA-256 pass
bench-signing: $(STAMP)
	$(PY) -m benchmarks.signing

## lock: re-resolve requirements/main.in into the hash-pinned runtime lock, then requirements/dev.in
## (constrained to it) into the dev lock, which omits every package already pinned in the runtime lock
lock: $(STAMP)
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --no-annotate \
	  --custom-compile-command "make lock" -o $(LOCK) requirements/main.in
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --no-annotate \
	  --custom-compile-command "make lock" -o $(DEV_LOCK) \
	  $$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/--no-emit-package \1/p' $(LOCK)) requirements/dev.in

clean: down
	rm -rf .govdeploy
