# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,sweep,export,streaming,app,openmoji

.PHONY: demo test test-fast lint format install bench clean

$(BIN)/s2p-train: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/s2p-train

# A short training run on the synthetic data (no download), then where to look.
demo: install
	$(BIN)/s2p-train trainer.max_epochs=40

# The whole suite, as CI runs it.
test: install
	$(BIN)/python -m pytest -q

# The tests that start no process and no browser (not marked slow): under 2 minutes.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: install
	$(BIN)/python bench/seed_speed.py

clean:
	rm -rf outputs .pytest_cache
