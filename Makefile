# Charge-point agent: `make sim` runs the product, `make test` installs everything and tests it.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
PORT   ?= /dev/ttyUSB0

.PHONY: all deps system sim test lint build bench deploy clean

all: test

# A fresh Debian may lack venv (python3-venv) or Node; install what is missing, then pin the rest.
# The host tools install editable (pyproject.toml): .venv/bin/cp-agent runs this tree's code.
$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv missing: installing it with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the tests drive as real parts: Chromium loads the mock hub's page, Mosquitto is
# the MQTT broker (host_sim/broker.py; Debian puts it in /usr/sbin).
system:
	@command -v chromium >/dev/null || { echo "installing chromium with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@PATH="$$PATH:/usr/sbin" command -v mosquitto >/dev/null || { \
	  echo "installing mosquitto with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }

deps: $(VENV)/.installed node_modules/.installed system

# make sim MODE=mqtt: the same through Mosquitto and the relay, plus an app-started session
# (host_sim/scenarios/mqtt.json: the relay is the CPO endpoint the mock hub calls; docs/sim.md)
sim: $(VENV)/.installed
	$(if $(filter-out mqtt,$(MODE)),$(error MODE: expected mqtt or nothing, got '$(MODE)'))
	$(VENV)/bin/cp-agent run --chargers 2 \
	  --scenario host_sim/scenarios/$(if $(MODE),mqtt,default).json --speed 300 --timeline$(if $(MODE), --mqtt start)

lint: $(VENV)/.installed
	$(PY) -m ruff check firmware host_sim tests tools
	$(PY) tools/check_style.py

test: deps lint build
	PYTHONHASHSEED=0 $(PY) tools/run_tests.py

# BOARD=esp32|rp2|all: which images (dist/<board>/); the board modules are checked against
# their port's API stubs first (tools/stubcheck.py, stubs pinned in requirements-stubs.txt).
BOARD  ?= all
# OPT=0: .mpy with line numbers, for tracebacks while debugging (default 3 leaves them out: RAM).
OPT    ?= 3
build: $(VENV)/.installed
	$(PY) tools/build.py --board $(BOARD) --opt $(OPT)

bench: deps build
	$(PY) tools/bench.py

# make deploy PORT=/dev/ttyUSB0 [BOARD=esp32|rp2] [CONFIG=path] [DRY=1] [FROZEN=1 | ROMFS=1] [OPT=0]:
# docs/boards.md.
CONFIG ?= config.json
deploy: build
	$(PY) tools/deploy.py --port $(PORT) --board $(BOARD) --config $(CONFIG) $(if $(DRY),--dry-run) \
	  $(if $(FROZEN),--frozen) $(if $(ROMFS),--romfs)

clean:
	rm -rf dist build
