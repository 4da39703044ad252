# Calln: `make run` starts the whole stack locally, `make test` runs linters and the test suite.
# Both do the set-up first: virtualenv, Python and npm packages, and Debian packages when root.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps

.PHONY: setup run test lint typecheck pytest bench screenshots lock clean

setup: $(STAMPS)/python $(STAMPS)/npm $(STAMPS)/system

$(STAMPS)/python: requirements.lock
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	@touch $@

$(STAMPS)/npm: package.json package-lock.json scripts/copy_assets.py
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	$(PY) scripts/copy_assets.py
	@touch $@

$(STAMPS)/system: scripts/system_packages.sh
	@mkdir -p $(STAMPS)
	bash scripts/system_packages.sh
	@touch $@

run: setup
	$(PY) scripts/run_local.py

lint: setup
	$(VENV)/bin/ruff check shared services tests bench scripts

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

# Re-take the screenshots in docs/screenshots/ from the browser tests.
screenshots: setup
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_browser_product.py

bench: setup
	$(PY) -m bench

# Re-pin every installed Python package after changing requirements.in.
lock:
	$(PY) -m pip install --quiet -r requirements.in
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(STAMPS) $(VENV) node_modules services/web/static/vendor
