# The two commands a newcomer needs: `make run` and `make test`.
# Each creates .venv and installs the project on a fresh machine by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench bench-elastalert simulate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/alerting run --config config.yaml

test: $(STAMP) lint typecheck
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check alerting tests benchmarks tools
	$(BIN)/ruff format --check alerting tests benchmarks tools
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Figures and targets, ~5 minutes; `make bench BENCH_FLAGS=--quick` takes ~1 minute.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all $(BENCH_FLAGS)

# One threshold rule against ElastAlert 2's FrequencyRule (benchmarks/README.md). ElastAlert
# lives in its own venv, never the project's; `make bench` says "not measured" without it.
EA_VENV := benchmarks/.venv-elastalert
EA_STAMP := $(EA_VENV)/.installed

$(EA_STAMP):
	$(PYTHON) -m venv $(EA_VENV)
	$(EA_VENV)/bin/pip install --quiet --ignore-requires-python elastalert2==2.31.0
	touch $(EA_STAMP)

bench-elastalert: $(STAMP) $(EA_STAMP)
	$(BIN)/python -m benchmarks.bench_elastalert

simulate: $(STAMP)
	$(BIN)/alerting simulate --port 8089

clean:
	rm -rf $(VENV) $(EA_VENV) state .pytest_cache .mypy_cache .ruff_cache
