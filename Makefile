# Two commands for a fresh machine with Python 3.11+ and pip:
#   make lab    set up .venv with the course only and start JupyterLab on course/
#   make test   add the test extras to .venv and run every test, the browser walk and nbval included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BINDER := .venv-binder

.PHONY: lab test test-fast test-course test-restricted bench docs clean

# Two stamps: the learner's `make lab` installs the course alone (and shows pip's progress);
# `make test` adds the test and bench extras (playwright, repo2docker, kaleido, ...).
LAB_STAMP := $(VENV)/.installed-course

$(LAB_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tcplab needs Python 3.11+, this is " + sys.version.split()[0]'
	@echo "creating $(VENV) and installing the course (JupyterLab, ipywidgets, plotly, pandas)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[course]"
	touch $(LAB_STAMP)

$(STAMP): $(LAB_STAMP) pyproject.toml
	@echo "installing the test and bench extras..."
	$(BIN)/python -m pip install -e ".[course,test,bench]"
	touch $(STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --notebook-dir=course $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Everything CI checks: unit, kernel, fuzz and browser tests; the course under nbval as this
# user; then the course as Binder installs it, as a non-root user without namespaces.
test: $(STAMP)
	./scripts/ensure-chromium
	$(BIN)/python -m pytest tests --doctest-modules tcplab -q -p no:cacheprovider
	$(MAKE) --no-print-directory test-course test-restricted

test-course: $(STAMP)
	cd course && ../$(BIN)/python -m pytest --nbval-lax . -q -p no:cacheprovider

# A fresh venv from binder/requirements.txt (what repo2docker installs), then the course as a
# learner on a locked-down hub sees it: scripts/run_restricted.py when we are root (non-root
# user, namespaces forbidden by the kernel), the TCPLAB_FORBID_NAMESPACES switch otherwise.
test-restricted:
	rm -rf $(BINDER)
	$(PYTHON) -m venv $(BINDER)
	$(BINDER)/bin/python -m pip install -qq -r binder/requirements.txt pytest==9.2.0 nbval==0.11.0
	cd course && if [ "$$(id -u)" = 0 ]; then \
	  $(PYTHON) ../scripts/run_restricted.py ../$(BINDER)/bin/python -m pytest --nbval-lax . -q -p no:cacheprovider; \
	else \
	  TCPLAB_FORBID_NAMESPACES=1 ../$(BINDER)/bin/python -m pytest --nbval-lax . -q -p no:cacheprovider; \
	fi

# Only the pure tests (no kernel, browser, fuzz or slow ones): about 20 s. A test not marked
# `real` that opens a socket, forks or reads live /proc/net state fails (tests/conftest.py).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider -m "not real and not browser and not fuzz and not slow"

bench: $(STAMP)
	$(BIN)/python bench/run.py

docs: $(STAMP)
	$(BIN)/python scripts/gen_api.py
	$(BIN)/python -m tcplab.experiments.agreement --out docs/agreement.md

clean:
	rm -rf $(VENV) $(BINDER) .pytest_cache .hypothesis
