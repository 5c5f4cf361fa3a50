# Two commands: `make demo` runs the example DAG against the local emulator, `make test` runs the suite.
# Both create the virtualenv from nothing (Python and pip are all they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The .venv must be $(PYTHON)'s version: one made by another Python, or broken, is recreated (not kept forever).
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV_VERSION := $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)-python$(PYTHON_VERSION)
DEMO := $(CURDIR)/.demo
# Bytecode is compiled once at install (uv does not by default): every Airflow process of the suite, the demo and
# the deployment then reads .pyc files instead of compiling ~3,000 modules (~7 CPU s each, and where
# PYTHONDONTWRITEBYTECODE is set, as on this machine and in CI, in every process again).
UV_COMPILE := --compile-bytecode

# The older Airflow lines Cloud Composer 3 builds; each gets its own env, pinned by constraints/airflow-LINE.txt.
COMPAT_LINES := 2.11 3.1 3.2
COMPAT := .venv-compat
COMPAT_PACKAGES := apache-airflow apache-airflow-providers-google google-cloud-aiplatform apache-airflow-providers-common-compat

.PHONY: demo test test-unit test-compat test-deployment test-ui ui-screenshot lint bench dist dist-check docs newcomer clean venv-mismatch

ifneq ($(VENV_VERSION),$(PYTHON_VERSION))
$(STAMP): venv-mismatch
endif

# Airflow and its providers are ~2 GB: a first install takes about 3 minutes (seconds with uv's cache warm).
$(STAMP): pyproject.toml constraints.txt
	@if [ "$(VENV_VERSION)" != "$(PYTHON_VERSION)" ] && [ -e $(VENV) ]; then \
	  echo "$(VENV) is Python '$(VENV_VERSION)' (or broken), $(PYTHON) is $(PYTHON_VERSION): recreating it"; \
	  rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade uv
	@echo "Installing the package, Airflow and the dev and docs tools into $(VENV) (about 3 minutes the first time)"
	$(BIN)/uv pip install --python $(BIN)/python $(UV_COMPILE) -c constraints.txt -e ".[dev,docs]"
	rm -f $(VENV)/.installed-* && touch $@

# Test files are spread over TEST_WORKERS processes (pytest-xdist; a file stays on one worker), each with its
# own Airflow home, metadata DB and emulator: the suite is mostly Airflow processes starting, which use a core each.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# The fast layer only: tests marked `unit` (no emulator, no Airflow DB; tests/conftest.py marks them).
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

# A real Airflow (scheduler, dag-processor, triggerer, api-server; LocalExecutor, SQLite) and the emulator as
# separate processes in .deployment/, driven through the REST API (tests/deployment). Afterwards, whatever
# happened to pytest, every process group it recorded in .deployment/pgids and any process carrying its
# token (.deployment/token) in its environment is killed.
DEPLOYMENT := $(CURDIR)/.deployment
test-deployment: $(STAMP)
	@status=0; $(BIN)/python -m pytest -q -p no:cacheprovider -m deployment tests/deployment || status=$$?; \
	$(BIN)/python -m tests.deployment.deployment; exit $$status

# The Moments tab in headless Chromium (Debian's `chromium`), driven by Playwright, against the same kind of
# deployment as test-deployment (one start, a few minutes); leftovers are killed the same way afterwards.
test-ui: $(STAMP)
	@status=0; $(BIN)/python -m pytest -q -p no:cacheprovider -m ui tests/ui || status=$$?; \
	$(BIN)/python -m tests.deployment.deployment; exit $$status

# The docs' picture of the Moments tab, taken by test-ui from the real view.
ui-screenshot: $(STAMP)
	UI_SCREENSHOT=$(CURDIR)/docs/images/moments-tab.png $(MAKE) test-ui

# Rebuilt from nothing when pyproject.toml or the line's constraints change; uv's cache makes that ~20 s.
$(COMPAT)/airflow-%/.installed: pyproject.toml constraints/airflow-%.txt | $(STAMP)
	rm -rf $(COMPAT)/airflow-$*
	$(BIN)/uv venv -q --python $(PYTHON) $(COMPAT)/airflow-$*
	$(BIN)/uv pip install -q --python $(COMPAT)/airflow-$*/bin/python $(UV_COMPILE) -c constraints/airflow-$*.txt -e ".[dev]"
	touch $@

# The suite (no ruff) against each older line, then one summary line per line; fails if any line failed.
# Airflow 2.11 runs all of it; 3.1 and 3.2 run the tests that run DAGs (-m dag: where Airflow lines differ,
# in how tasks run, defer, retry and fail); the rest (no DAG run) runs on 3.3 (make test) and 2.11. 3.1 leaves
# out the example DAGs and Google's own operators (run on 2.11, 3.2 and 3.3, with the same Google pins): its
# share of CI's 45 minutes goes to how tasks run.
COMPAT_31_SKIP := --ignore=tests/test_docs_examples.py --ignore=tests/test_example_dags.py --ignore=tests/test_google_clients.py
test-compat: $(foreach line,$(COMPAT_LINES),$(COMPAT)/airflow-$(line)/.installed)
	@status=0; for line in $(COMPAT_LINES); do \
	  env=$(COMPAT)/airflow-$$line; \
	  echo "== Airflow $$line: $$($$env/bin/python -c 'import sys; from importlib.metadata import version as v; print("python", sys.version.split()[0], *(f"{p} {v(p)}" for p in sys.argv[1:]))' $(COMPAT_PACKAGES))"; \
	  case $$line in 2.*) select="";; 3.1) select="-m dag $(COMPAT_31_SKIP)";; *) select="-m dag";; esac; \
	  { $$env/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) $$select; echo $$? >$$env/pytest.rc; } 2>&1 | tee $$env/pytest.log; \
	  [ "$$(cat $$env/pytest.rc)" = 0 ] || status=1; \
	done; \
	echo "== test-compat summary"; \
	for line in $(COMPAT_LINES); do \
	  last=$$(tail -n1 $(COMPAT)/airflow-$$line/pytest.log); \
	  count() { n=$$(echo "$$last" | grep -oE "[0-9]+ $$1" | cut -d' ' -f1); echo $${n:-0}; }; \
	  echo "airflow-$$line: $$(count passed) passed, $$(( $$(count failed) + $$(count error) )) failed, $$(count skipped) skipped"; \
	done; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Every tests/benchmarks/bench_*.py, each printing one JSON line per case (not part of `make test`).
bench: $(STAMP)
	@set -e; for f in tests/benchmarks/bench_*.py; do \
		echo "== $$f"; $(BIN)/python -m tests.benchmarks.$$(basename $$f .py); \
	done

# The emulator runs in the background for the length of the demo; the trap stops it however the demo ends.
demo: $(STAMP)
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	@set -e; \
	$(BIN)/python -m airflow_provider_video_actions.emulator --env-file $(DEMO)/emulator.env >$(DEMO)/emulator.log 2>&1 & \
	trap "kill $$! 2>/dev/null" EXIT; \
	for i in $$(seq 150); do [ -f $(DEMO)/emulator.env ] && break; sleep 0.2; done; \
	cat $(DEMO)/emulator.env; . $(DEMO)/emulator.env; \
	export AIRFLOW_HOME=$(DEMO)/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=False; \
	export VIDEO_ACTIONS_TIMELINE=$(DEMO)/timeline.png; \
	$(BIN)/airflow db migrate >$(DEMO)/airflow-db.log 2>&1; \
	echo "Running the example DAG (log: $(DEMO)/dag.log)"; \
	$(BIN)/airflow dags test video_action_recognition >$(DEMO)/dag.log 2>&1 || { tail -40 $(DEMO)/dag.log; exit 1; }; \
	sed -n '/^video  /,/^moments: /p' $(DEMO)/dag.log; \
	grep -q "DagRun Finished.*state=success" $(DEMO)/dag.log; echo "Demo DAG run succeeded."; \
	test -s $$VIDEO_ACTIONS_TIMELINE; echo "Timeline: $$VIDEO_ACTIONS_TIMELINE"

# Wheel and sdist in dist/, built by the standard PEP 517 frontend with the setuptools backend.
dist: $(STAMP)
	rm -rf dist && $(BIN)/python -m build -q --installer uv -o dist . && ls dist

# The built wheel in a clean env with only Airflow (constraints.txt pins), then `airflow providers list` there.
DIST_ENV := .venv-dist
dist-check: dist
	rm -rf $(DIST_ENV) && $(BIN)/uv venv -q --python $(PYTHON) $(DIST_ENV)
	$(BIN)/uv pip install -q --python $(DIST_ENV)/bin/python -c constraints.txt dist/*.whl
	AIRFLOW_HOME=$(CURDIR)/$(DIST_ENV)/airflow $(DIST_ENV)/bin/airflow providers list -o plain | grep -E "^package_name|video"

# The docs site (Sphinx) in docs/_build/html; any warning fails the build.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "Docs: docs/_build/html/index.html"

# A newcomer's path, as the docs give it: the wheel into a clean venv (not editable), the emulator started,
# videos made and uploaded with its commands, every docs example DAG run with `airflow dags test`.
NEWCOMER := $(CURDIR)/.newcomer
newcomer: dist
	rm -rf $(NEWCOMER) && mkdir -p $(NEWCOMER)
	NEWCOMER=$(NEWCOMER) PYTHON=$(PYTHON) bash docs/examples/newcomer.sh

clean:
	rm -rf $(VENV) $(COMPAT) $(DEMO) $(DEPLOYMENT) $(DIST_ENV) $(NEWCOMER) dist build docs/_build .pytest_cache .ruff_cache
