# The two set-up commands in the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test install install-test bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(PY)
	$(PIP) install -q -e '.[local]'

# instructor (tests/clients) goes in without its pins: every release caps jiter below what the pinned openai needs
install-test: $(PY)
	$(PIP) install -q -e '.[local,test,scale]'
	$(PIP) install -q --no-deps instructor==1.17.0

## install and start the gateway on its embedded defaults (local model, no keys needed)
run: install
	$(VENV)/bin/unigate serve $(ARGS)

## install the test dependencies, check types and lint, and run the whole test suite
test: install-test
	$(VENV)/bin/mypy src
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q $(PYTEST_ARGS)

## load benchmark against mock upstreams (needs nginx and wrk: apt-get install -y nginx wrk)
bench: install
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
