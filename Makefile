# Everything a developer or CI needs, from a machine with only Python 3, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

PLUGINS_STAMP := .meltano/.installed-stamp

.PHONY: venv bytecode plugins azurite demo test test-fast pytest-fast lint typecheck pytest fixtures corpus bench bench-tap bench-clouds bench-target bench-pacing bench-shards docs clean

venv: $(STAMP)

# Meltano's plugin virtualenvs (tap-mparticle from this checkout, target-jsonl from PyPI),
# installed here so the tests that run the real meltano CLI need no network.
plugins: $(PLUGINS_STAMP)

$(PLUGINS_STAMP): $(STAMP) meltano.yml
	MELTANO_SEND_ANONYMOUS_USAGE_STATS=false UV_COMPILE_BYTECODE=1 $(BIN)/meltano install
	touch $(PLUGINS_STAMP)

# Azurite, Microsoft's Azure Storage emulator, from npm into a project-local folder; the
# Azure tests start it on 127.0.0.1 (node and npm are on the machine).
AZURITE_VERSION := 3.37.0
AZURITE_STAMP := .azurite/.installed-$(AZURITE_VERSION)

azurite: $(AZURITE_STAMP)

$(AZURITE_STAMP):
	rm -rf .azurite
	npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $(AZURITE_STAMP)

# uv resolves and installs the dev groups in seconds; it comes from PyPI like everything else.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as in CI) every
# process would otherwise recompile singer-sdk, boto3 and meltano on start.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[all]' --group dev
	touch $(STAMP)

# Our own packages' bytecode: an editable install leaves them as source, and with
# PYTHONDONTWRITEBYTECODE set (as in CI) every tap and target process, in the tests and
# under Meltano, would compile them again on start (about 40 ms each). Only changed
# files are compiled again.
bytecode: venv
	$(BIN)/python -m compileall -q tap_mparticle target_mparticle mparticle_facts

# The main job with no cloud account: tap-mparticle over the bundled sample drop, through Meltano.
demo: venv bytecode plugins
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv bytecode plugins azurite
	$(BIN)/python -m pytest -q --durations=10

# Everything (CI runs this through .ci/run).
test: lint typecheck pytest

# The edit loop: the same checks without the tests that run the real meltano CLI
# (marker `meltano`); the benchmarks never run under pytest. `make test` before pushing.
pytest-fast: venv bytecode azurite
	$(BIN)/python -m pytest -q --durations=10 -m "not meltano and not external"

test-fast: lint typecheck pytest-fast

# Regenerate the committed sample drop (deterministic: same bytes every time).
fixtures: venv
	rm -rf samples/drop
	$(BIN)/python scripts/generate_drop.py samples/drop --events 600 --seed 7
	$(BIN)/python -c 'from pathlib import Path; from scripts.generate_audiences import write_sample_audiences; write_sample_audiences(Path("samples/drop"))'

# Recapture the Python SDK's request bodies and rebuild the real-data drop
# (tests/fixtures/real; both deterministic, and a test checks the committed bytes).
corpus: venv
	$(BIN)/python scripts/capture_sdk_bodies.py
	$(BIN)/python scripts/build_real_corpus.py

bench: bench-tap bench-clouds bench-target bench-pacing bench-shards

bench-tap: venv bytecode
	$(BIN)/python benchmarks/bench_tap.py

bench-clouds: venv bytecode azurite
	$(BIN)/python benchmarks/bench_tap_clouds.py

bench-target: venv bytecode
	$(BIN)/python benchmarks/bench_target.py

# Pacing against token-bucket accounts: six scenarios of about 25 s each.
bench-pacing: venv bytecode
	$(BIN)/python benchmarks/bench_pacing.py

# 1, 2 and 4 shards over one drop (add ARGS="--backend s3" to read it through moto).
bench-shards: venv bytecode
	$(BIN)/python benchmarks/bench_shards.py $(ARGS)

# Rewrite the README settings tables from --about --format=markdown, and the Meltano
# Hub definitions in plugins/ from meltano.yml.
docs: venv
	$(BIN)/python scripts/update_readme.py
	$(BIN)/python scripts/hub_definitions.py

clean:
	rm -rf $(VENV) .meltano .azurite output .pytest_cache .mypy_cache .ruff_cache
