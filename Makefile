# Two commands on a fresh machine: `make run` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: run serve test screenshots install lint migrate seed translations chromium clean bench messages bench-charge bench-faults

# The web server and one job worker (hold expiry, reconcile, event delivery, video jobs); Ctrl-C stops both.
run: install .env migrate seed
	$(BIN)/python -m ledger.devserver

# The production web server (granian, ledger/serve.py) on HOST:PORT (default 127.0.0.1:8000), with
# the settings of the environment and of .env when there is one. No job worker: run those apart.
serve: install
	$(BIN)/python -m ledger.serve

test: install chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist load --maxschedchunk 1

# The browser tests again, saving a full-page screenshot of every step they name to test-artifacts/.
screenshots: install chromium
	SCREENSHOTS=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist load --maxschedchunk 1 tests/e2e

install: $(STAMP) translations

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.env:
	cp .env.example .env

migrate: install .env
	$(BIN)/alembic upgrade head

seed: install .env
	$(BIN)/flask --app wsgi demo seed

# Compiled catalogues (.mo) are build output, made from the reviewed .po files.
translations: $(STAMP)
	$(BIN)/pybabel compile --statistics -d ledger/translations

# Browser tests drive Debian's chromium, its headless shell (Playwright's own browser download is not
# used); a CJK font lets screenshots of the Chinese pages show text instead of boxes.
BROWSER_PACKAGES := chromium-headless-shell fonts-wqy-microhei
chromium:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	  echo "installing $(BROWSER_PACKAGES) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Refresh the message catalogues after changing visible strings.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -o ledger/translations/messages.pot ledger
	$(BIN)/pybabel update -i ledger/translations/messages.pot -d ledger/translations --no-fuzzy-matching

bench: install
	$(BIN)/python bench/usage_report.py

# One charge side by side (bench/README.md): pgbench, psycopg, charge_usage, HTTP under gunicorn
# and under granian (as `make serve` starts it) driven by Debian's wrk (installed with apt-get when
# missing, like chromium).
bench-charge: install
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/charge_compare.py

# kill -9 of the server and a PostgreSQL restart under 16 clients charging, on an embedded PostgreSQL
# of its own: nothing lost, nothing doubled, 503 and not 500 (bench/README.md). Exits 1 on a failure.
bench-faults: install
	$(BIN)/python bench/fault_run.py

clean:
	rm -rf $(VENV) instance .pytest_cache
