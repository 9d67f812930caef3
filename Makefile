# One-command entry points. Each target creates .venv if absent and installs the project
# with the tested versions pinned in constraints.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# pytest worker processes (pytest-xdist): the suite's tests are independent (own tmp dirs, free ports)
TEST_WORKERS ?= 2
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed-test

.PHONY: install demo compare test test-all clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# the baseline on ring8 (mode coverage + plot), then every method on ring8 and the leaderboard
demo: $(STAMP)
	$(PY) -m zoo.demo
	$(MAKE) --no-print-directory compare
	$(PY) -m zoo.demo --committed

# every method on ring8, one seed, 300 generator steps each, then the leaderboard (resumable)
compare: $(STAMP)
	$(PY) -m zoo.compare --methods all --data ring8 --seeds 1 --budget 300steps --out runs/compare-demo --wandb false

test: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-all: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q -m '' -n $(TEST_WORKERS) --dist worksteal

clean:
	rm -rf $(VENV) runs
