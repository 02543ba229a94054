# speechmask: `make demo` and `make test` each do the whole set-up first (Debian packages, .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
PYTEST_ARGS ?=

.PHONY: install demo test test-all test-gpu test-federated bench results clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(PYTHON)
	@touch $@

demo: install
	bash scripts/demo.sh $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest -q -m "not slow and not gpu and not hardware" $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -q -m "not gpu and not hardware" $(PYTEST_ARGS)

# the federated tests alone, the deployment runtime's included (also part of `make test`)
test-federated: install
	$(BIN)/python -m pytest -q tests/test_federated.py tests/test_federated_deploy.py $(PYTEST_ARGS)

# the CUDA path of training (tests/test_cuda.py); needs a CUDA build of torch and a GPU
test-gpu: install
	$(BIN)/python -m pytest -q -m gpu $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/bench_frontend.py
	$(BIN)/python benchmarks/bench_synth.py --repeats 3
	$(BIN)/python benchmarks/bench_mask.py --work build/bench_mask
	$(BIN)/python benchmarks/bench_patterns.py --manifest build/bench_mask/corpus/manifest.jsonl \
		--slu build/bench_mask/slu.pt --mask build/bench_mask/mask_40ms.pt
	$(BIN)/python benchmarks/bench_mask.py --corpus build/bench_mask/corpus \
		--work build/bench_mask_speakers --split-field speaker_split
	$(BIN)/python benchmarks/bench_attack.py --corpus build/bench_mask/corpus \
		--runs build/bench_mask --out build/bench_attack
	$(BIN)/python benchmarks/bench_export.py --corpus build/bench_mask/corpus \
		--runs build/bench_mask --out build/bench_export
	$(BIN)/python benchmarks/bench_firmware.py --export build/bench_export/fw --out build/bench_firmware
	$(BIN)/python benchmarks/bench_federated.py --manifest build/bench_mask/corpus/manifest.jsonl \
		--mask build/bench_mask/mask_40ms.pt --slu build/bench_mask/slu.pt --out build/bench_federated
	$(BIN)/python benchmarks/bench_federated.py --runtimes
	$(BIN)/python benchmarks/bench_federated.py --lm
	$(BIN)/python benchmarks/bench_sweep.py --corpus build/bench_mask/corpus \
		--runs build/bench_mask --reuse-cache build/bench_attack
	$(BIN)/speechmask data heldout --manifest build/bench_mask/corpus/manifest.jsonl \
		--out build/heldout/manifest.jsonl --force
	$(BIN)/python benchmarks/bench_mask.py --corpus build/heldout --work build/bench_mask_heldout \
		--record bench_mask_heldout
	$(BIN)/python benchmarks/bench_attack.py --corpus build/heldout --runs build/bench_mask_heldout \
		--out build/bench_attack_heldout --record bench_attack_heldout
	$(BIN)/python benchmarks/bench_adversary.py --corpus build/bench_mask/corpus \
		--slu build/bench_mask/slu.pt --work build/bench_adversary --cache build/bench_attack/cache
	$(BIN)/python benchmarks/bench_speaker_cues.py --manifest build/bench_mask/corpus/manifest.jsonl
	$(BIN)/python benchmarks/bench_ablation.py --manifest build/bench_mask/corpus/manifest.jsonl \
		--slu build/bench_mask/slu.pt --mask build/bench_mask/mask_40ms.pt
	$(BIN)/speechmask data synth --out build/tuning/corpus --seed 101
	$(BIN)/python benchmarks/bench_ablation.py --manifest build/tuning/corpus/manifest.jsonl \
		--slu build/bench_mask/slu.pt --mask build/bench_mask/mask_40ms.pt --attacks speaker \
		--record bench_ablation_tuning --cache build/tuning/cache --seeds 0 1 \
		--variants gates norm32 norm64 norm256 norm32+warp20 norm64+warp10 norm64+warp20 \
		norm256+warp10 norm256+warp20 norm256+warp30 norm64+scale norm256+scale \
		norm256+scale+warp10 norm256+level norm256+warp20+level norm256+warp30+level
	$(BIN)/python scripts/results.py

# docs/results.md and the README's headline table, from benchmarks/results/*.json
results:
	$(BIN)/python scripts/results.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info
