# musika-tf: `make demo` and `make test` are the two set-up commands (both install what is missing).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: install demo pipeline test data clean help

help:
	@echo "make demo      install, generate music with the shipped models (checkpoints/piano, techno)"
	@echo "make pipeline  install, build the embedded data sets, train a tiny model through every stage"
	@echo "make test   install, run the test suite"
	@echo "make data   install, build the demo-size embedded data sets only"

install:
	@bash scripts/setup.sh

data: install
	$(PY) -m musika_tf build-data maestro
	$(PY) -m musika_tf build-data techno

demo: install
	$(PY) -m musika_tf demo

pipeline: install
	$(PY) -m musika_tf demo --pipeline

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build demo_out .pytest_cache
