"""What the kiosk runs: the installed inference runtimes and the pinned versions of its models.

The staff dashboard shows these; it asks here rather than reading ``models/SHA256SUMS`` or importing
``engine`` itself (the UI talks to the appliance only, DESIGN.md §3).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from engine.errors import ModelError
from engine.models import read_checksums

__all__ = ["RUNTIME_PACKAGES", "model_versions", "runtime_versions"]

# The distributions `backend = "auto"` can pick a runtime from (onnxruntime-gpu installs the same module as
# onnxruntime, so the distribution name is what tells them apart).
RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "tensorrt")


def runtime_versions() -> dict[str, str]:
    """Installed inference runtime distribution -> its version; the ones not installed are left out."""
    versions = {}
    for package in RUNTIME_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def model_versions(models_dir: Path) -> dict[str, str]:
    """Model file -> first 12 hex digits of its pinned sha256 (``models_dir/SHA256SUMS``): the model's
    version. {} when the checksum file cannot be read (the dashboard then shows none, the worker refuses
    to load unverified models anyway)."""
    try:
        return {name: digest[:12] for name, digest in read_checksums(models_dir).items()}
    except ModelError:
        return {}
