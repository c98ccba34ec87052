# `make run` serves the gateway on memory://; `make test` runs every test.
# Both create .venv with the project and its dev tools when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/messaging: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/messaging

run: $(BIN)/messaging
	MESSAGING_BROKER_URL=$${MESSAGING_BROKER_URL:-memory://} $(BIN)/messaging serve

test: $(BIN)/messaging
	$(BIN)/ruff check messaging adapters api tests bench
	$(BIN)/ruff format --check messaging adapters api tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(BIN)/messaging
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
