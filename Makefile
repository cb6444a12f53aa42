# SmartPark: `make demo` starts the whole platform locally with simulated devices; `make test` runs the tests.
# Both install what is missing first: Debian packages (mosquitto, influxdb, socat, chromium) and a .venv with
# the project installed from pyproject.toml.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := mosquitto influxdb socat chromium chromium-driver fonts-wqy-microhei poppler-utils


.PHONY: demo test lint bench setup system-deps venv clean

demo: setup
	$(PY) -m smartpark.cli demo

test: setup
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/summary.py

setup: system-deps venv

# Install only what is missing; the package lists are refreshed once, before the first install.
system-deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

clean:
	rm -rf var build *.egg-info
