# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The window on the other Qt binding. PyQt6 < 6.11: from Qt 6.11 on, pyqtgraph's SVG exporter
# cannot parse Qt's path data (pyqtgraph issue #3485), and the replay window exports SVG.
QT6_VENV  := .venv-qt6
QT6_STAMP := $(QT6_VENV)/.installed
QT6_PIN   := PyQt6>=6.5,<6.11

.PHONY: demo test test-wheel test-qt6 lint env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

env: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# The suite on PyQt5, the window tests again on PyQt6, then the wheel outside the checkout.
test: $(STAMP)
	$(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(MAKE) test-qt6
	$(MAKE) test-wheel

# The wheel, installed non-editably in a fresh venv outside the checkout, runs the quick demo.
test-wheel: $(STAMP)
	.ci/test-wheel $(BIN)/python

$(QT6_STAMP): pyproject.toml
	test -x $(QT6_VENV)/bin/python || $(PYTHON) -m venv $(QT6_VENV)
	$(QT6_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(QT6_VENV)/bin/python -m pip install --quiet -e '.[test]' '$(QT6_PIN)'
	touch $(QT6_STAMP)

# The window tests again, on PyQt6 (qtpy picks the binding from QT_API): part of `make test`;
# on 2 cores the venv installs from scratch in ~27 s (no pip cache) and the tests take ~17 s.
test-qt6: $(QT6_STAMP)
	QT_API=pyqt6 QT_QPA_PLATFORM=offscreen $(QT6_VENV)/bin/python -m pytest -q \
		tests/gui tests/test_packaging.py

demo: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/daqapp demo --output demo-output

clean:
	rm -rf $(VENV) $(QT6_VENV) demo-output .pytest_cache
