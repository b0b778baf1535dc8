# Every target bootstraps .venv on its own, so a fresh clone needs only `make lab` or
# `make test`. It installs the versions the kit was tested with, from the locks in
# requirements/ (hashes included; `make lock` refreshes them from pyproject.toml). A stamp file
# makes an install run again only when a lock is newer than the last one: the lab's packages
# for `make lab`, the developers' for the rest.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_STAMP := $(VENV)/.installed-lab
DEV_STAMP := $(VENV)/.installed-dev
LAB_LOCK := requirements/lab.txt
DEV_LOCK := requirements/dev.txt
# The project's own kernel spec comes first on JUPYTER_PATH, so notebooks run in .venv even
# when the laptop has another "python3" kernel registered for the user.
export JUPYTER_PATH := $(abspath $(VENV))/share/jupyter
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# With a wheelhouse/ folder (make wheelhouse, handed out on USB sticks) the lab installs from it
# alone: no network at all. The developers' tools are not in it, so they may still download.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
WHEELS := $(if $(wildcard wheelhouse/*.whl),--find-links wheelhouse)
OFFLINE := $(if $(WHEELS),--no-index $(WHEELS))

.PHONY: doctor lab test lint run cluster hosts replicated bench locust demo notebooks slides slides-pdf wheelhouse lock clean

$(LAB_STAMP): pyproject.toml $(LAB_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Accord needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version)." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) $(OFFLINE) --require-hashes --requirement $(LAB_LOCK)
	$(PIP) $(OFFLINE) --no-deps -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (Accord)" >/dev/null
	@touch $(LAB_STAMP)

$(DEV_STAMP): $(LAB_STAMP) $(DEV_LOCK)
	$(PIP) $(WHEELS) --require-hashes --requirement $(DEV_LOCK)
	@touch $(DEV_STAMP)

# Is this laptop ready? A green or red line per check, with the fix. It runs on $(PYTHON) and
# the standard library alone, so it works (and makes nothing) before .venv exists.
doctor:
	@$(PYTHON) -m accord_app.lab.doctor

# Extra JupyterLab flags, e.g. make lab LAB_ARGS="--no-browser --port 8899".
LAB_ARGS ?=
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# JupyterLab opens on notebooks/; the whole project is in its file browser, so the instructor's
# deck (slides/accord.ipynb, presented with RISE) shows the plots of benchmarks/reference/.
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks \
		--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
		--LabApp.news_url=None $(LAB_ARGS)

# Two processes share the tests (pytest-xdist): the suite mostly waits on servers, disks and
# browsers, so two finish it sooner even on two cores. More would crowd the load and crash
# tests on a small machine. A plain `.venv/bin/pytest tests/...` runs in one process.
TEST_PROCESSES ?= 2
test: lint
	$(BIN)/pytest --numprocesses $(TEST_PROCESSES)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy accord_app
	$(BIN)/lint-imports
	$(BIN)/python -m accord_app.lab.attendee --check

run: $(LAB_STAMP)
	$(BIN)/python -m accord_app

# K workers behind Caddy on :8787, e.g. make cluster K=2 SHARDING=global. ACCORD_* variables
# reach the workers: ACCORD_WORK_MS=20 ACCORD_WORK_KIND=turn make cluster adds a per-message cost.
K ?= 4
SHARDING ?= channel
cluster: $(LAB_STAMP)
	$(BIN)/python -m accord_app.cluster --workers $(K) --sharding $(SHARDING)

# The same with each worker a host of its own: its own data folder, and its own network
# namespace and address on Linux as root (else a loopback port); the catalog on PostgreSQL.
hosts: $(LAB_STAMP)
	$(BIN)/python -m accord_app.cluster --workers $(K) --sharding $(SHARDING) --hosts

# Hosts whose actors' writes go to a replicated log (chapter 09): each host also runs a NATS
# JetStream server, and a write is acknowledged once a majority of them has it, fsynced.
HOSTS ?= 3
replicated: $(LAB_STAMP)
	$(BIN)/python -m accord_app.cluster --hosts $(HOSTS) --sharding $(SHARDING) --replicated

# The scaling benchmark (about 30 minutes; BENCH_ARGS=--quick: about 2).
BENCH_ARGS ?=
bench: $(LAB_STAMP)
	$(BIN)/python benchmarks/scaling.py $(BENCH_ARGS)

# Locust's web UI on http://127.0.0.1:8089 against a running app or cluster; headless, e.g.
# LOCUST_ARGS="--headless --run-time 30s". Its master and generators talk on loopback, on a
# free port: on Locust's usual one, they would join any other Locust test running here.
LOCUST_HOST ?= http://127.0.0.1:8787
LOCUST_ARGS ?=
FREE_PORT = $(shell $(BIN)/python -c 'import socket; s = socket.socket(); \
	s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
locust: $(LAB_STAMP)
	$(BIN)/locust -f benchmarks/locustfile.py --host $(LOCUST_HOST) --web-host 127.0.0.1 \
		--master-bind-host 127.0.0.1 --master-port $(eval PORT := $(FREE_PORT))$(PORT) \
		--master-bind-port $(PORT) --processes 2 $(LOCUST_ARGS)

# The live demo of slides/INSTRUCTOR.md: one actor for everything against one per channel, on
# clusters of its own with the limits lifted and 20 ms per message (accord_app/lab/demo.py).
demo: $(LAB_STAMP)
	$(BIN)/python -m accord_app.lab.demo

# The deck as one page that works offline: slides/build/index.html (S: speaker notes).
slides: $(LAB_STAMP)
	$(BIN)/python slides/build.py

# The deck as a PDF, printed by Debian's Chromium from the page above: slides/build/accord.pdf.
slides-pdf: slides $(DEV_STAMP)
	$(BIN)/python slides/pdf.py

# Every wheel the lab needs for the laptops of a room: see tools/wheelhouse.py. Narrow it
# with e.g. WHEELHOUSE_ARGS="--platform linux-x86_64 --python 3.12".
WHEELHOUSE_ARGS ?=
wheelhouse: $(DEV_STAMP)
	$(BIN)/python tools/wheelhouse.py $(WHEELHOUSE_ARGS)

# The locks, for every platform and Python 3.11+ at once (uv's universal resolution), with
# the hashes of every file. The developers' lock keeps the lab's versions.
LOCK := pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --quiet
lock: $(DEV_STAMP)
	$(BIN)/uv $(LOCK) --extra lab --output-file $(LAB_LOCK)
	$(BIN)/uv $(LOCK) --extra lab --extra dev --constraint $(LAB_LOCK) --output-file $(DEV_LOCK)

notebooks: $(DEV_STAMP)
	$(BIN)/python -m accord_app.lab.attendee

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
