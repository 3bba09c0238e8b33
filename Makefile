# The course's commands. The README's quick start is `make course` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
NB ?=

.PHONY: course test lab notebooks check install clean grade

$(VENV)/.installed: pyproject.toml tools/install.py
	$(PYTHON) tools/install.py --venv $(VENV) --torch "$(TORCH)"
	@touch $@

install: $(VENV)/.installed

## make course [NB=02]: execute the solution notebooks at this machine's profile, print the numbers
course: install notebooks
	$(PY) tools/run_course.py $(foreach n,$(NB),--nb $(n))

## make test: the whole test suite (unit tests, exercise checks, every notebook in the smoke profile)
test: install
	$(PY) tools/build_notebooks.py --check || (echo "generated notebooks are stale: run 'make notebooks'"; exit 1)
	$(PY) -m pytest tests solutions --nbval-lax -p no:cacheprovider

## make lab: JupyterLab on the student notebooks
lab: install
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) tools/install.py --venv $(VENV) --torch "$(TORCH)" --lab
	$(PY) -m jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

## make notebooks: regenerate solutions/*.ipynb and notebooks/*.ipynb from solutions/*.py
notebooks: install
	$(PY) tools/build_notebooks.py

## make check: lint and generated notebooks in sync (no notebook execution)
check: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check coursekit tools tests benchmarks conftest.py solutions/*.py
	$(PY) tools/build_notebooks.py --check

clean:
	rm -rf build .pytest_cache

## make grade SUBMISSIONS=folder [GRADES=build/grades] [JOBS=2]: grade submitted notebooks (README: Grading)
SUBMISSIONS ?=
GRADES ?= build/grades
JOBS ?= 2
grade: install
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=path/to/folder [GRADES=build/grades] [JOBS=2]"; exit 2)
	$(PY) -m coursekit.grading.grade "$(SUBMISSIONS)" -o "$(GRADES)" -j $(JOBS)
