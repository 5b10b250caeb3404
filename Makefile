# Two commands for a fresh machine with Python 3.11+ and pip:
#   make lab    set up .venv with the course only and start JupyterLab on course/
#   make test   add the test extras to .venv and run every test, the browser walk, nbval and the course site included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BINDER := .venv-binder

.PHONY: lab test test-fast test-course test-restricted test-workshop workshop-env workshop-bench bench docs clean \
        site site-build test-site \
        test-kernels test-kernels-quick test-kernels-ci kernels workshop-bench14

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
# user, and the course site built from those runs and opened page by page (test-site, ~1.5 min); then the course as Binder installs it, as a non-root user without namespaces; then (as root)
# a JupyterHub with a room of 12 learners running the course's experiments at once (~1.5 min).
test: $(STAMP)
	./scripts/ensure-chromium
	$(BIN)/python -m pytest tests --doctest-modules tcplab book -q -p no:cacheprovider -m "not workshop and not site" --durations=25
	$(MAKE) --no-print-directory test-course test-site
	@# test-kernels-ci (timing-independent checks in two QEMU guests, one CPU each) runs beside
	@# test-restricted: the guests cost no extra minutes, and the restricted learner's course runs on a
	@# busy host, where every real result must hold or say it lost fidelity (issue 20).
	@if [ "$$(id -u)" = 0 ] && { command -v qemu-system-x86_64 || command -v apt-get; } >/dev/null; then \
	  log=$$(mktemp); $(MAKE) --no-print-directory test-kernels-ci > "$$log" 2>&1 & kpid=$$!; \
	  $(MAKE) --no-print-directory test-restricted; r=$$?; wait $$kpid; k=$$?; \
	  echo "== test-kernels-ci (ran beside test-restricted)"; cat "$$log"; rm -f "$$log"; \
	  [ $$r = 0 ] && [ $$k = 0 ]; \
	else \
	  $(MAKE) --no-print-directory test-restricted && \
	  echo "test-kernels-ci skipped: booting Debian's 6.1 and 6.12 under QEMU needs root (and QEMU or apt-get)"; \
	fi
	if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-workshop; \
	else echo "test-workshop skipped: it creates Unix accounts and runs a hub, which needs root"; fi

# The course under nbval, real where this host allows. book/nbcapture.py keeps what ran (each notebook
# with its outputs, in $(EXECUTED)): the course site is built from these runs, never a second execution.
EXECUTED := build/executed
CAPTURE  := TCPLAB_NB_CAPTURE=$(abspath $(EXECUTED)) PYTHONPATH=$(abspath book)

test-course: $(STAMP)
	rm -rf $(EXECUTED)
	cd course && $(CAPTURE) ../$(BIN)/python -m pytest -p nbcapture --nbval-lax --nbval-kernel-startup-timeout 180 . -q -p no:cacheprovider

# A fresh venv from binder/requirements.txt (what repo2docker installs), then the course as a
# learner on a locked-down hub sees it: scripts/run_restricted.py when we are root (non-root
# user, namespaces forbidden by the kernel), the TCPLAB_FORBID_NAMESPACES switch otherwise.
test-restricted:
	rm -rf $(BINDER)
	$(PYTHON) -m venv $(BINDER)
	$(BINDER)/bin/python -m pip install -qq -r binder/requirements.txt pytest==9.2.0 nbval==0.11.0
	cd course && if [ "$$(id -u)" = 0 ]; then \
	  $(PYTHON) ../scripts/run_restricted.py ../$(BINDER)/bin/python -m pytest --nbval-lax --nbval-kernel-startup-timeout 180 . -q -p no:cacheprovider; \
	else \
	  TCPLAB_FORBID_NAMESPACES=1 ../$(BINDER)/bin/python -m pytest --nbval-lax --nbval-kernel-startup-timeout 180 . -q -p no:cacheprovider; \
	fi

# Only the pure tests (no kernel, browser, fuzz or slow ones): about 20 s. A test not marked
# `real` that opens a socket, forks or reads live /proc/net state fails (tests/conftest.py).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider -m "not real and not browser and not fuzz and not slow"

# The course as a website (docs/site.md): Jupyter Book 1.x (Sphinx + MyST-NB, pure pip: book/requirements.txt)
# over the executed notebooks and docs/. Launch buttons: Binder, and a JupyterHub when HUB_URL is given
# (an nbgitpuller link: the hub needs nbgitpuller), e.g. make site HUB_URL=https://hub.example.edu
#   make site        execute the course (as test-course does), then build build/site/_build/html
#   make test-site   build from the notebooks test-course executed (executes them only when missing),
#                    then open every page in headless Chromium (tests/test_site.py)
SITE_STAMP  := $(VENV)/.installed-site
SITE_SRC    := build/book
SITE_OUT    := build/site
HUB_URL     ?=
BINDER_URL  ?= https://mybinder.org
SITE_REPO   ?= https://github.com/tcplab/tcplab
SITE_BRANCH ?= main

$(SITE_STAMP): $(STAMP) book/requirements.txt
	$(BIN)/python -m pip install -q -r book/requirements.txt
	touch $(SITE_STAMP)

# the figures' PNGs (kaleido + Chromium) render while Jupyter Book builds the pages: two processes, two cores
site-build: $(SITE_STAMP)
	$(BIN)/python book/prepare.py --executed $(EXECUTED) --out $(SITE_SRC) --hub-url '$(HUB_URL)' \
	  --binder-url '$(BINDER_URL)' --repo-url '$(SITE_REPO)' --branch '$(SITE_BRANCH)' --png-jobs build/site-pngs.json
	rm -rf $(SITE_OUT)
	$(BIN)/python book/prepare.py --png-jobs build/site-pngs.json --into $(SITE_OUT)/_build/html/_static/figures & png=$$!; \
	  $(BIN)/jupyter-book build $(SITE_SRC) --path-output $(SITE_OUT) -q --keep-going; built=$$?; \
	  wait $$png; pngs=$$?; [ $$built = 0 ] && [ $$pngs = 0 ]
	@echo "the site: $(SITE_OUT)/_build/html/index.html ($$(find $(SITE_OUT)/_build/html -name '*.html' -not -path '*/_static/*' -not -path '*/_sources/*' | wc -l) pages)"

# a failed cell does not stop an instructor's build: its page says which cells failed, and shows them
site: $(SITE_STAMP)
	./scripts/ensure-chromium
	$(MAKE) --no-print-directory test-course || echo "WARNING: some cells failed; their pages show them (make test-site fails on them)"
	$(MAKE) --no-print-directory site-build

# with a hub URL (example.edu: a link only, never followed) so the nbgitpuller button is checked too
test-site: $(SITE_STAMP)
	./scripts/ensure-chromium
	[ -d $(EXECUTED) ] || $(MAKE) --no-print-directory test-course
	$(MAKE) --no-print-directory site-build HUB_URL='$(or $(HUB_URL),https://hub.example.edu)'
	$(BIN)/python -m pytest tests/test_site.py -m site -q -p no:cacheprovider -s

bench: $(STAMP)
	$(BIN)/python bench/run.py

docs: $(STAMP)
	$(BIN)/python scripts/gen_api.py
	$(BIN)/python -m tcplab.experiments.agreement --out docs/agreement.md

# A workshop on this host (workshop/jupyterhub_config.py). The learners' environment is built from
# a system interpreter every account can execute (like TLJH's /opt/tljh/user), with tcplab
# installed (not editable: learners must not need to read this checkout); the proxy from npm.
WS_PYTHON ?= /usr/bin/python3
WS_ENV    ?= workshop/build/env
WS_STAMP  := $(WS_ENV)/.installed
WS_DRIVER := $(VENV)/.workshop-installed
CHP       := workshop/build/node/node_modules/.bin/configurable-http-proxy
LEARNERS  ?= 12

$(WS_STAMP): pyproject.toml $(shell find tcplab -name '*.py')
	@$(WS_PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "WS_PYTHON must be Python 3.11+ readable by every learner"'
	$(WS_PYTHON) -m venv $(WS_ENV)
	$(WS_ENV)/bin/python -m pip install -qq --upgrade pip
	$(WS_ENV)/bin/python -m pip install -qq ".[course,workshop]"
	touch $(WS_STAMP)

$(CHP):
	npm install --silent --prefix workshop/build/node configurable-http-proxy@5.3.0

$(WS_DRIVER): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -qq -e ".[workshop]"
	touch $(WS_DRIVER)

workshop-env: $(WS_STAMP) $(CHP) $(WS_DRIVER)

# root only: creates LEARNERS accounts tcplab-l01..., runs the hub on loopback, removes them
test-workshop: workshop-env
	./scripts/ensure-chromium
	TCPLAB_LEARNERS=$(LEARNERS) TCPLAB_WORKSHOP_ENV=$(abspath $(WS_ENV)) $(BIN)/python -m pytest tests/test_workshop.py -m workshop -q -p no:cacheprovider -s

# the capacity table of docs/instructors.md (~16 minutes on 2 cores; root)
BENCH_LEVELS ?= 1,4,8,12,16,24,32,48,64
workshop-bench: workshop-env
	TCPLAB_WORKSHOP_ENV=$(abspath $(WS_ENV)) $(BIN)/python workshop/room.py bench --levels $(BENCH_LEVELS) --out workshop/build/bench.json

# notebook 15's congestion runs, N learners at once: where fidelity is lost (docs/instructors.md; root, ~10 min)
BENCH14_LEVELS ?= 1,2,4,8
workshop-bench14: workshop-env
	TCPLAB_WORKSHOP_ENV=$(abspath $(WS_ENV)) $(BIN)/python workshop/room.py bench14 --levels $(BENCH14_LEVELS) --out workshop/build/bench14.json

# Other kernels (issue 20): Debian's 6.1 and 6.12 booted under QEMU (TCG) over this machine's root
# by scripts/kernel-guest, which installs QEMU and virtme-ng and fetches the kernels itself
# (cache: ~/.cache/tcplab/kernels outside the clone, or $$TCPLAB_KERNEL_CACHE; root on Debian). Each guest boot takes ~20-30 s; Python inside
# runs 20-100x slower, so every run has a timeout. Results go to docs/kernels/ (a --rwdir).
#   make test-kernels        per kernel: the real tests that decide kernel behaviour, and the whole
#                            agreement grid real vs sim with that kernel's profile
#                            (docs/kernels/agreement-linux-K.md)
#   make test-kernels-quick  per kernel: the facts script (sysctls, qdiscs, SYN times) and a handful of
#                            kernel-dependent agreement points (writes docs/kernels/quick-linux-K.*)
#   make test-kernels-ci     per kernel: scripts/kernel-ci.py, the facts that do not depend on timing
#                            (sysctl presence and defaults, somaxconn in a userns, SYN count, SYN- and
#                            accept-queue limits, CONFIG_HZ) against tcplab's profile of that kernel;
#                            writes nothing; `make test` runs it as root (the CI part, < 10 minutes)
KERNELS       ?= 6.1 6.12
# PYTHONPATH: the guest imports this tree's tcplab, whatever tree the venv's editable install names (a
# worktree run with another tree's venv ran its grid on that other tree's code)
KGUEST        := PYTHONPATH=$(CURDIR) TCPLAB_VENV=$(abspath $(VENV)) ./scripts/kernel-guest
# what an instructor's host has and a bare guest lacks: /dev/net/tun (no udev in the guest to
# create it) and net.core.rmem_max for notebook 15's congestion runs (docs/instructors.md); the
# guest's own init namespace, never this machine's
KGUEST_PREP   := --prep 'modprobe tun' --prep 'sysctl -qw net.core.rmem_max=4194304'
KGUEST_RUN     = $(KGUEST) run $$k $(KGUEST_PREP) --rwdir $(abspath $(KERNEL_OUT))
KERNEL_OUT    := docs/kernels
KERNEL_TESTS  ?= tests/test_kernel_real.py tests/test_loopback.py tests/test_experiments_accept_queue.py \
                 tests/test_experiments_syn_queue.py tests/test_experiments_syn_retries.py \
                 tests/test_experiments_time_wait.py tests/test_experiments_ack_overflow.py \
                 tests/test_experiments_lifecycle.py tests/test_experiments_keepalive.py \
                 tests/test_experiments_retransmission.py tests/test_experiments_nagle.py \
                 tests/test_experiments_handshake.py
# congestion's userspace delay line is CPU-bound: under TCG it carries 6-12 Mbit/s whatever the
# path asks (measured on 6.12: utilization 0.17-0.77 against 0.80-0.99 simulated), so its real runs
# in a guest measure QEMU, not the kernel; window's bulk flows cross the same delay line (20-40 Mbit/s)
KERNEL_GRID_SKIP ?= congestion,window
KERNEL_QUICK_POINTS := --point 'syn_retries:retries=1' --point 'syn_queue:backlog=0,syncookies=0,max_syn_backlog=16' \
                 --point 'syn_queue:backlog=4,syncookies=1,max_syn_backlog=16' --point 'accept_queue:backlog=5,clients=20' \
                 --point 'time_wait:port_range=(40000,40009);tw_reuse=1;connections=30' \
                 --point 'retransmission:user_timeout=1500'

kernels: $(STAMP)
	$(KGUEST) fetch $(KERNELS)

test-kernels: kernels
	mkdir -p $(KERNEL_OUT)
	@fail=0; for k in $(KERNELS); do \
	  echo "== linux $$k: real tests"; \
	  $(KGUEST_RUN) --timeout 3600 -- \
	    $(BIN)/python -m pytest $(KERNEL_TESTS) -m real -q -p no:cacheprovider \
	    --junitxml=$(KERNEL_OUT)/tests-linux-$$k.xml || fail=1; \
	  echo "== linux $$k: agreement grid"; \
	  $(KGUEST_RUN) --timeout 5400 -- \
	    $(BIN)/python scripts/kernel-agreement.py --skip '$(KERNEL_GRID_SKIP)' --out $(KERNEL_OUT)/agreement-linux-$$k.md \
	    --json $(KERNEL_OUT)/agreement-linux-$$k.json || fail=1; \
	done; exit $$fail

test-kernels-quick: kernels
	mkdir -p $(KERNEL_OUT)
	@fail=0; for k in $(KERNELS); do \
	  echo "== linux $$k: facts and quick agreement"; \
	  $(KGUEST_RUN) --timeout 600 -- sh -c \
	    "$(BIN)/python scripts/kernel-facts.py --json $(KERNEL_OUT)/facts-linux-$$k.json >/dev/null && \
	     $(BIN)/python scripts/kernel-agreement.py $(KERNEL_QUICK_POINTS) \
	     --out $(KERNEL_OUT)/quick-linux-$$k.md --json $(KERNEL_OUT)/quick-linux-$$k.json" || fail=1; \
	done; exit $$fail

# The guests boot side by side (one TCG vCPU each on this 2-core host: 2.5 min instead of 4.5): their
# checks are timing-independent, and each run has its own directory (kernel-guest mkdtemp). Each log is
# printed whole, in order, when both are done.
test-kernels-ci: kernels
	@logs=$$(mktemp -d); trap 'rm -rf "$$logs"' EXIT; \
	for k in $(KERNELS); do \
	  cfg=$$($(KGUEST) info $$k | sed -n 's/^config=//p'); \
	  ( $(KGUEST) run $$k --timeout 420 -- $(abspath $(BIN))/python scripts/kernel-ci.py --config "$$cfg" \
	    > "$$logs/$$k.log" 2>&1; echo $$? > "$$logs/$$k.rc" ) & \
	done; wait; fail=0; \
	for k in $(KERNELS); do \
	  echo "== linux $$k: kernel-ci (timing-independent facts vs the profile)"; cat "$$logs/$$k.log"; \
	  [ "$$(cat "$$logs/$$k.rc" 2>/dev/null)" = 0 ] || { echo "== linux $$k: kernel-ci FAILED"; fail=1; }; \
	done; exit $$fail

clean:
	rm -rf $(VENV) $(BINDER) .pytest_cache .hypothesis workshop/build $(EXECUTED) $(SITE_SRC) $(SITE_OUT) build/site-pngs.json build/site-a11y.json
