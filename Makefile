# Set-up, demo, live run, tests and benchmarks. `make setup` is idempotent: it installs the
# system packages only when missing (sudo when not root), creates .venv and installs the project
# (editable, with test and bench extras) only when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins tmux
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR := build/demo

.PHONY: setup system-packages demo run test lint bench clean

setup: system-packages $(STAMP)

system-packages:
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not a Debian-like system: install PortAudio (and PulseAudio for the device tests) yourself"; fi

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench,batch]'
	@touch $(STAMP)

demo: setup
	@mkdir -p $(DEMO_DIR)
	@[ -f $(DEMO_DIR)/question.wav ] || $(PY) -m localserver.speak "What is the capital of France?" $(DEMO_DIR)/question.wav --pad-ms 1000
	$(PY) -m pipelines.agent --local --input-wav $(DEMO_DIR)/question.wav --output-wav $(DEMO_DIR)/reply.wav --log-dir $(DEMO_DIR)/logs
	@echo "--- conversation ($$(ls -t $(DEMO_DIR)/logs/session_*.log | head -1)) ---"
	@grep -E '^(User Input|Agent (Audio|Text) Response):' "$$(ls -t $(DEMO_DIR)/logs/session_*.log | head -1)"
	@echo "--- the agent's reply is in $(DEMO_DIR)/reply.wav ---"

# make run ARGS="--local" talks to the embedded server; ARGS="--help" lists every flag
run: setup
	$(PY) -m pipelines.agent $(ARGS)

# The lint gate runs first: a style slip fails `make test` (and CI) before the suite starts.
# Then the suite in two parts: the tests marked `alone` (real-time audio on the PulseAudio rig,
# the bench smoke run's own load) one by one with nothing alongside; everything else in two
# worker processes (most of it waits on sockets and subprocesses, not the CPU), a module per
# worker. Both parts always run; either failing fails `make test`. A device test that fails runs
# again (up to twice, tests/devices/conftest.py); -rfER lists failures, errors and reruns.
test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	@status=0; \
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not alone" --durations=10 || status=1; \
	$(PY) -m pytest -q -m alone -rfER --durations=5 || status=1; \
	exit $$status

# The lint gate: ruff's checks and formatting, configured in pyproject.toml ([tool.ruff]).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	$(PY) -m bench

clean:
	rm -rf build logs .pytest_cache
