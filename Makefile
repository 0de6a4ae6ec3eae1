# The two set-up commands of the README:
#   make run   -> create .venv, install the package with the RL extra, run the default comparison
#   make test  -> create .venv, install with the test extras (docs included: a test builds the site; benchmarl
#                 included: it resolves torchrl 0.11.x, on which experiments.learning.marl also runs), run the test suite
# torch is installed first with the exact CPU build (TORCH), and kept by naming it in every install (an unpinned
# resolution could pull a CUDA build); the package's extras only take a range.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
TORCH  ?= torch==2.13.0

.PHONY: run test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[rl]" "$(TORCH)"
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[rl,marl,benchmarl,dev,distributed,docs]" "$(TORCH)"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/pev-experiments compare --overwrite

test: install-test
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/env_step.py
	$(BIN)/python benchmarks/mpc_step.py

clean:
	rm -rf $(VENV) build *.egg-info
