# One-command set-up, demo and tests. `make test` is what CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build that lies on this kind of machine; override for another platform, e.g. TORCH='torch'.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.noisebrush-installed
PROMPT ?= a red sun over purple mountains
CLIP   ?= a small yellow sun setting slowly in the centre over purple mountains at sunset
SHAPE  ?= a short wide round table with four legs

.PHONY: setup test demo bench clean studio browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	@# Keep a torch that is already installed: if the system Python has one, the venv sees it
	@# (--system-site-packages); otherwise take the pinned CPU build, never a surprise multi-GB CUDA download.
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	@$(MAKE) --no-print-directory browser
	@touch $(STAMP)

# The studio's browser tests drive Debian's Chromium through Playwright (browsers cannot be downloaded here).
# Installed with apt where missing and possible; otherwise those tests are skipped with the reason.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	     echo "note: could not install chromium with apt: the studio's browser tests will be skipped"; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	     (sudo -n apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (sudo -n apt-get update -q >/dev/null 2>&1 && sudo -n apt-get install -y -q chromium >/dev/null 2>&1)) || \
	     echo "note: could not install chromium with apt: the studio's browser tests will be skipped"; \
	  else echo "note: no /usr/bin/chromium and no root to install it: the studio's browser tests will be skipped"; fi; fi

# One test process per core (pytest-xdist), each on one torch thread (tests/conftest.py); a file's tests stay in one
# process, so its module fixtures are built once.
test: setup
	$(PY) -m pytest -n auto --dist loadfile

demo: setup
	$(VENV)/bin/noisebrush paint "$(PROMPT)" -n 4 --seed 7 --size 128 --out outputs
	$(VENV)/bin/noisebrush paint "three small blue circles on a yellow background" -n 4 --seed 7 --out outputs
	$(VENV)/bin/noisebrush animate "$(CLIP)" --seed 7 --out outputs
	$(VENV)/bin/noisebrush sculpt "$(SHAPE)" --seed 7 --format glb --out outputs

studio: setup
	$(VENV)/bin/noisebrush studio --gallery outputs

bench: setup
	$(PY) -m noisebrush.bench samplers --json outputs/bench-samplers.json
	$(PY) -m noisebrush.bench train --json outputs/bench-train.json

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
