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

# The emulator runs in the background for the length of the demo; the trap stops it however the demo ends.
demo: $(STAMP)
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	@set -e; \
	$(BIN)/python -m airflow_provider_video_actions.emulator --env-file $(DEMO)/emulator.env >$(DEMO)/emulator.log 2>&1 & \
	trap "kill $$! 2>/dev/null" EXIT; \
	for i in $$(seq 150); do [ -f $(DEMO)/emulator.env ] && break; sleep 0.2; done; \
	cat $(DEMO)/emulator.env; . $(DEMO)/emulator.env; \
	export AIRFLOW_HOME=$(DEMO)/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=False; \
	$(BIN)/airflow db migrate >$(DEMO)/airflow-db.log 2>&1; \
	echo "Running the example DAG (log: $(DEMO)/dag.log)"; \
	$(BIN)/airflow dags test video_action_recognition >$(DEMO)/dag.log 2>&1 || { tail -40 $(DEMO)/dag.log; exit 1; }; \
	sed -n '/^video  /,/ errors$$/p' $(DEMO)/dag.log; \
	grep -q "DagRun Finished.*state=success" $(DEMO)/dag.log && echo "Demo DAG run succeeded."

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
