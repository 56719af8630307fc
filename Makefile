# recon: the README's commands. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Every pip call uses the one constraints file; torch (the CPU build on this disk) goes in first.
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup demo test test-all bench system-deps clean

setup: $(VENV)/.installed

# System libraries the Python wheels need: open3d links libusb-1.0. The browser tests drive
# Debian's chromium (playwright never downloads a browser: there is no network at test time).
system-deps:
	@if ! ldconfig -p | grep -q 'libusb-1.0.so.0'; then \
		echo "installing system packages (libusb-1.0-0)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing system packages (chromium, for the browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml constraints.txt | system-deps
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	@touch $@

demo: setup
	$(VENV)/bin/recon demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Everything, slow tests included (gpu tests skip without CUDA).
test-all: setup
	$(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

# The benchmarks' extra packages (scikit-image; Debian's colmap, which bench/sfm.py compares
# `recon process` with) are installed here only: `make test` never needs them.
bench: setup
	$(PIP) -e '.[bench]'
	@command -v colmap >/dev/null || { echo "installing Debian's colmap (for bench/sfm.py)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq colmap >/dev/null \
		|| echo "colmap could not be installed: bench/sfm.py skips its rows"; }
	@for b in bench/*.py; do echo "# $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache build *.egg-info
