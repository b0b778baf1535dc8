# Every target bootstraps .venv from pyproject.toml on its own, so a fresh clone needs only
# `make lab` or `make test`. The stamp file makes the install run again only when
# pyproject.toml is newer than the last install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The project's own kernel spec comes first on JUPYTER_PATH, so notebooks run in .venv even
# when the laptop has another "python3" kernel registered for the user.
export JUPYTER_PATH := $(abspath $(VENV))/share/jupyter
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: lab test lint run cluster bench locust notebooks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Accord needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version)." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[lab,dev]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (Accord)" >/dev/null
	@touch $(STAMP)

# Extra JupyterLab flags, e.g. make lab LAB_ARGS="--no-browser --port 8899".
LAB_ARGS ?=
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ROOT_FLAG) \
		--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
		--LabApp.news_url=None $(LAB_ARGS)

test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy accord_app
	$(BIN)/python -m accord_app.lab.attendee --check

run: $(STAMP)
	$(BIN)/python -m accord_app

# K workers behind Caddy on :8787, e.g. make cluster K=2 SHARDING=global. ACCORD_* variables
# reach the workers: ACCORD_WORK_MS=20 ACCORD_WORK_KIND=turn make cluster adds a per-message cost.
K ?= 4
SHARDING ?= channel
cluster: $(STAMP)
	$(BIN)/python -m accord_app.cluster --workers $(K) --sharding $(SHARDING)

# The scaling benchmark (about 30 minutes; BENCH_ARGS=--quick: about 2).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/scaling.py $(BENCH_ARGS)

# Locust's web UI on http://127.0.0.1:8089 against a running app or cluster.
LOCUST_HOST ?= http://127.0.0.1:8787
LOCUST_ARGS ?=
locust: $(STAMP)
	$(BIN)/locust -f benchmarks/locustfile.py --host $(LOCUST_HOST) --web-host 127.0.0.1 \
		--processes 2 $(LOCUST_ARGS)

notebooks: $(STAMP)
	$(BIN)/python -m accord_app.lab.attendee

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
