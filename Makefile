# The course's commands. The README's quick start is `make course` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
NB ?=
FRESH ?=
LAB ?= $(PY) -m jupyter lab

.PHONY: course test lab workspace notebooks check release install clean

$(VENV)/.installed: pyproject.toml tools/install.py
	$(PYTHON) tools/install.py --venv $(VENV) --torch "$(TORCH)"
	@touch $@

install: $(VENV)/.installed

## make course [NB=02]: execute the solution notebooks at this machine's profile, print the numbers
course: install notebooks
	$(PY) tools/run_course.py $(foreach n,$(NB),--nb $(n))

## make test: the whole test suite (unit tests, exercise checks, every notebook in the smoke profile)
test: install
	$(PY) tools/build_notebooks.py --check || (echo "generated notebooks are out of date: 'make notebooks' regenerates them (a notebook edited by hand is first moved to workspace/rescued/, never overwritten)"; exit 1)
	$(PY) -m pytest tests solutions --nbval-lax -p no:cacheprovider

## make lab: JupyterLab on your notebooks in workspace/ (copied there once by `make workspace`)
lab: install workspace
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) tools/install.py --venv $(VENV) --torch "$(TORCH)" --lab
	$(LAB) workspace/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

## make workspace [FRESH=02]: copy new student notebooks to workspace/ (never overwrites one);
## FRESH=02 moves your copy of lecture 02 to a timestamped backup and copies it afresh
workspace: install
	$(PY) tools/workspace.py $(foreach n,$(FRESH),--fresh $(n))

## make notebooks: regenerate solutions/*.ipynb and notebooks/*.ipynb from solutions/*.py
notebooks: install
	$(PY) tools/build_notebooks.py

## make check: lint and generated notebooks in sync (no notebook execution)
check: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check coursekit tools tests benchmarks conftest.py solutions/*.py
	$(PY) tools/build_notebooks.py --check

## make release: check that version, tag, badge and set-up cell agree, tag v<version>, push the tag;
## make release REPOSITORY=https://github.com/owner/name sets the address first (then commit)
release: install
	$(PY) tools/release.py $(if $(REPOSITORY),--set-repository $(REPOSITORY),--publish)

clean:
	rm -rf build .pytest_cache
