# Every target installs what it needs first; see README.md for what each one does.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PEER_STAMP := $(VENV)/.installed-peer
INFRA := $(PY) deploy/local/infra.py
SERVICES := $(PY) deploy/local/services.py

.PHONY: env install infra-up infra-down infra-status run stop test test-unit lint docs bench-backbone bench bench-hot-sku demo rebuild clean deadletters k8s

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The eventsourcing library, only for make bench's side-by-side run (benchmarks/peer.py).
$(PEER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,peer]'
	touch $(PEER_STAMP)

# docker compose's passwords and AUTH_TOKEN_SECRET: .env, generated once (keys it lacks are added, values
# kept); standard library only, so no install first. make run keeps its own in the state folder.
env:
	$(PYTHON) deploy/local/credentials.py .env

infra-up: install
	$(INFRA) up

infra-down:
	@if [ -x $(PY) ]; then $(INFRA) down; else echo "nothing installed, nothing running"; fi

infra-status: install
	$(INFRA) status

run: infra-up
	$(SERVICES) start

stop:
	@if [ -x $(PY) ]; then $(SERVICES) stop; fi

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: install
	$(PY) -m backbone.contracts.docs
	$(PY) -m services.openapi

bench-backbone: infra-up
	$(PY) -m benchmarks.backbone

bench: infra-up $(PEER_STAMP)
	$(PY) -m benchmarks.flow --peer

bench-hot-sku: infra-up
	$(PY) -m benchmarks.hot_sku

# make deadletters ARGS="list" (or show, replay, purge, parked ...): see python -m backbone.deadletters --help
deadletters: install
	@set -a; if [ -f "$${BACKORDER_STATE_DIR:-.state}/infra.json" ]; then eval "$$($(INFRA) env)"; fi; set +a; \
	$(PY) -m backbone.deadletters $(ARGS)

# The Kubernetes manifests, rendered: make k8s OVERLAY=local (or base)
k8s:
	"$$(deploy/k8s/kustomize.sh)" build deploy/k8s/$(if $(filter base,$(OVERLAY)),base,overlays/$(or $(OVERLAY),local))

# make rebuild SERVICE=order (or inventory, procurement, notifier, edi): re-derive its read models from its log
rebuild: infra-up
	$(SERVICES) rebuild $(SERVICE)

demo: run
	$(PY) deploy/local/demo.py

# infra.py clean also deletes PostgreSQL's folder outside the state folder (as root: under /var/lib/backorder).
clean: stop
	@if [ -x $(PY) ]; then $(INFRA) clean; else rm -rf "$${BACKORDER_STATE_DIR:-.state}"; fi
