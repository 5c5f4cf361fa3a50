# Two commands: `make demo` runs the example DAG against the local emulator, `make test` runs the suite.
# Both create the virtualenv from nothing (Python and pip are all they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEMO := $(CURDIR)/.demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade uv
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	AIRFLOW_HOME=$(DEMO)/airflow $(BIN)/python -m airflow_provider_video_actions.demo --workdir $(DEMO)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
