# musika-tf: `make demo` and `make test` are the two set-up commands (both install what is missing).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test data clean help

help:
	@echo "make demo   install, build the embedded data sets, run the end-to-end demo"
	@echo "make test   install, run the test suite"
	@echo "make data   install, build the demo-size embedded data sets only"

install:
	@bash scripts/setup.sh

data: install
	$(PY) -m musika_tf build-data maestro
	$(PY) -m musika_tf build-data techno

demo: install
	$(PY) -m musika_tf demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build demo_out .pytest_cache
