# Two commands for a fresh machine with Python 3.11+ and pip:
#   make lab    set up .venv and start JupyterLab on course/
#   make test   set up .venv and run every test, the notebooks under nbval included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tcplab needs Python 3.11+, this is " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e ".[course,test,bench]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=course

test: $(STAMP)
	./scripts/ensure-chromium
	$(BIN)/python -m pytest tests -q
	$(BIN)/python -m pytest --nbval-lax course -q -p no:randomly

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow and not browser and not fuzz"

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
