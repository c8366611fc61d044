# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,sweep,export,streaming,app

.PHONY: demo test install bench clean

$(BIN)/s2p-train: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/s2p-train

# A short training run on the synthetic data (no download), then where to look.
demo: install
	$(BIN)/s2p-train trainer.max_epochs=40

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/seed_speed.py

clean:
	rm -rf outputs .pytest_cache
