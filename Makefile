# One Makefile; CI (.ci/run) calls the same targets a person does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo browser test lint typecheck check bench clean

# llm 0.31.1, the last release with the older schema, in a venv of its own so
# that the import tests read a database it really wrote. Without the network
# it is skipped and so are those tests, with a reason.
LLM031 := .venv-llm031
LLM031_STAMP := $(LLM031)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,web]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m localfirst.demo

$(LLM031_STAMP):
	@($(PYTHON) -m venv $(LLM031) \
	  && $(LLM031)/bin/python -m pip install --quiet "llm==0.31.1" "llm-echo==0.3" httpx \
	  && touch $(LLM031_STAMP)) \
	  || echo "note: could not install llm 0.31.1; the tests that need it will be skipped"

# Headless Chromium (Debian's package) for the browser tests of `serve`.
# Installed where the machine allows (root, apt); otherwise those tests skip.
browser:
	@command -v chromium >/dev/null 2>&1 \
	  || ([ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	      && (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1) \
	  || echo "note: could not install chromium; the browser tests of serve will be skipped"

test: $(STAMP) $(LLM031_STAMP) browser
	LOCALFIRST_TEST_LLM031="$(CURDIR)/$(LLM031)/bin/llm" $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check localfirst sync tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(LLM031) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
