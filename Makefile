# One-command set-up, demo and tests. `make test` is what CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build that lies on this kind of machine; override for another platform, e.g. TORCH='torch'.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.noisebrush-installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# Keep a torch that is already there; otherwise take the pinned CPU build (never a surprise CUDA download).
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m noisebrush.bench samplers --quick --json outputs/bench-samplers.json

bench: setup
	$(PY) -m noisebrush.bench samplers --json outputs/bench-samplers.json

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
