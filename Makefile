# Two entry points: `make demo` (train on real Cora) and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Real data beside the checkout when present (offline), else the example's own download/cache.
CORA_ROOT := $(wildcard ../shared/data/planetoid)

.PHONY: install demo test clean

$(VENV)/.installed: pyproject.toml scripts/setup_system.sh
	bash scripts/setup_system.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/cora.py $(if $(CORA_ROOT),--root $(CORA_ROOT),)

test: install
	$(PY) -m pytest -q --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
