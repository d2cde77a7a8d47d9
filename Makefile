# hipstats — the two commands a new user needs:
#   make report   install into .venv, then build the full report set from data/example into reports/
#   make test     install into .venv (with test extras), then run the test suite
# Other targets: make lab, make example-data, make bench, make clean

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hipstats-installed
SOURCE ?= data/example
OUT    ?= reports
JOBS   ?=

.PHONY: install report test lab example-data bench clean check-python

check-python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hipstats needs Python 3.11 or newer, found " + sys.version.split()[0]' \
		|| { echo "error: set PYTHON=/path/to/python3.11"; exit 2; }

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(BIN)/hipstats report $(SOURCE) --out $(OUT) $(if $(JOBS),--jobs $(JOBS),)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	HIPSTATS_SOURCE=$(abspath $(SOURCE)) $(BIN)/jupyter lab hipstats/notebooks/

# Regenerate the bundled example cohort bit for bit.
example-data: $(STAMP)
	$(BIN)/hipstats simulate --out data/example --n 150 --seed 2026 --force

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
