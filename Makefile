# avvp-lit: every target that needs the virtual environment creates it first.
PYTHON ?= python3
VENV ?= .venv
# torch comes with torchvision, which the video extractors (avvp-extract: R(2+1)D, and
# laion-clap's imports) need. PyPI's torchvision imports only beside these builds of torch
# (the CPU-only torch 2.13.0 file fails with "operator torchvision::nms does not exist"):
# 2.14.1 on x86_64, 2.9.1 on aarch64. Users with GPUs may name their own pair, e.g.
# make install TORCH_SPEC="torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu130"
ifeq ($(shell uname -m),aarch64)
TORCH_SPEC ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
endif
# laion-clap 1.1.7 (the CLAP package VALOR used) declares numpy<2 but runs on numpy 2 for
# what avvp-extract calls (tested); it is installed without its declared pins, and its
# imports come from the `video` extra.
LAION_CLAP ?= laion-clap==1.1.7
BIN := $(VENV)/bin
DATA ?= data/synthetic_valor_default
STAMP := $(VENV)/.installed

.PHONY: install browser test test-fast lint data train ablation compare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(LAION_CLAP)
	touch $(STAMP)

install: $(STAMP)

# Tests run in parallel, one worker per core (pytest-xdist). test-fast leaves out the
# tests marked slow (trainings, subprocess runs, notebooks, compile, locksteps): the
# edit-test loop; CI runs them all.
TEST_WORKERS ?= auto
test: $(STAMP) browser
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

test-fast: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow" tests

# The events page is tested in headless Chromium (Debian's chromium and chromium-driver);
# installed here when apt-get can, else that test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for the page test"; \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
		echo "could not install chromium: the events page test will be skipped"; \
	else echo "no chromium and no apt-get: the events page test will be skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

data: $(STAMP)
	@if [ -f $(DATA)/.complete ]; then echo "synthetic dataset already in $(DATA)"; \
	else $(BIN)/avvp-synth $(DATA) --features valor --size default --seed 0; fi

train: data
	$(BIN)/avvp-train experiment=synthetic data.root=$(DATA) $(ARGS)

PROFILE ?= converged
SWEEP ?= components
NOW := $(shell date +%Y-%m-%d_%H-%M-%S)
SWEEP_DIR ?= outputs/ablation/$(SWEEP)_$(PROFILE)_$(NOW)

# The ablation sweep as one Hydra multirun, one job per core (joblib, 1 torch thread
# each, fork DataLoader context), then avvp-report (also when some jobs failed).
ablation: data
	$(BIN)/avvp-train -m experiment=synthetic ablation=$(SWEEP) ablation/profile=$(PROFILE) \
		launcher=joblib logger=csv data.root=$(DATA) hydra.sweep.dir=$(SWEEP_DIR) $(ARGS); \
	status=$$?; $(BIN)/avvp-report $(SWEEP_DIR) && \
		ln -sfn $(notdir $(SWEEP_DIR)) $(dir $(SWEEP_DIR))latest && exit $$status

# The methods on the same data and seeds: MM-CSE (reference), VALOR++ and HAN, in the
# same profile, then avvp-report with paired intervals against MM-CSE.
compare:
	@$(MAKE) --no-print-directory ablation SWEEP=methods

clean:
	rm -rf $(VENV) outputs multirun wandb .pytest_cache
