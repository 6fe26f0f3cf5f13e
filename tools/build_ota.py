"""Build the signed Mender artifact of a kiosk release: ``build/ota/headshot-kiosk-<version>.mender``.

    python tools/build_ota.py --deb build/deb/headshot-kiosk_<version>_<arch>.deb --out build/ota
        [--key KEY.pem] [--device-type TYPE ...]

The artifact is a ``module-image`` for the ``headshot-kiosk-deb`` Update Module (``fleet/mender``) carrying
the one ``.deb``; it is written unsigned, signed with ``mender-artifact sign`` and checked with
``mender-artifact validate`` against the public key, which is written beside it as ``artifact-verify.pem``
(the kiosks' ``ArtifactVerifyKey``). The kiosks refuse an artifact that is unsigned, signed by another key
or altered.

The signing key (ECDSA P-256 or RSA, PEM) is ``--key``, else ``$HK_OTA_SIGNING_KEY``. Without either a
*development* key is generated once into ``<out>/artifact-signing-key.pem`` (mode 0600) and reused by later
builds, so a laptop or CI build is signed and verifiable; production keys live offline and are passed in.
Needs ``mender-artifact`` and ``dpkg-deb`` (Debian packages mender-artifact, dpkg).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PAYLOAD_TYPE = "headshot-kiosk-deb"  # the Update Module's name on the kiosk
SOFTWARE_NAME = "headshot-kiosk"  # provides rootfs-image.headshot-kiosk.version = <package version>
DEV_KEY_NAME = "artifact-signing-key.pem"
PUBLIC_KEY_NAME = "artifact-verify.pem"


class BuildError(Exception):
    """The artifact could not be built; the message says what to fix."""


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} is not installed (Debian package {argv[0]})") from None
    if result.returncode != 0:
        raise BuildError(f"{' '.join(argv[:3])} failed: {(result.stderr or result.stdout).strip()[-800:]}")
    return result.stdout


def deb_fields(deb: Path) -> dict[str, str]:
    """Package, Version and Architecture of ``deb``."""
    out = _run(["dpkg-deb", "--field", str(deb), "Package", "Version", "Architecture"])
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    if not all(fields.get(k) for k in ("Package", "Version", "Architecture")):
        raise BuildError(f"{deb} lacks a Package, Version or Architecture field")
    return fields


def load_or_make_key(key: Path | None, out: Path) -> tuple[bytes, bytes, bool]:
    """``(private PEM for mender-artifact, public PEM, generated)``.

    mender-artifact 3.9 reads EC keys only in the SEC1 ("EC PRIVATE KEY") form and RSA keys in PKCS#1, so
    any PEM key is re-serialised to those forms; the public key is SubjectPublicKeyInfo, which the client's
    ``ArtifactVerifyKey`` reads."""
    generated = False
    if key is None:
        key = out / DEV_KEY_NAME
        if not key.exists():
            private = ec.generate_private_key(ec.SECP256R1())
            pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            generated = True
    try:
        loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BuildError(f"cannot read the signing key {key}: {exc}") from None
    if isinstance(loaded, ec.EllipticCurvePrivateKey):
        if not isinstance(loaded.curve, ec.SECP256R1):
            raise BuildError("ECDSA signing keys must use the P-256 curve (what the Mender client verifies)")
    elif isinstance(loaded, rsa.RSAPrivateKey):
        if loaded.key_size < 3072:
            raise BuildError("RSA signing keys must have at least 3072 bits")
    else:
        raise BuildError("the signing key must be ECDSA P-256 or RSA")
    private_pem = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_pem = loaded.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem, generated


def build(deb: Path, out: Path, key: Path | None, device_types: list[str]) -> tuple[Path, Path]:
    """Write, sign and validate the artifact for ``deb`` into ``out``; returns (artifact, public key)."""
    if shutil.which("mender-artifact") is None:
        raise BuildError("mender-artifact is not installed (Debian package mender-artifact)")
    fields = deb_fields(deb)
    version = fields["Version"]
    out.mkdir(parents=True, exist_ok=True)
    private_pem, public_pem, generated = load_or_make_key(key, out)
    if generated or key is None:
        print(
            f"warning: signed with the development key {out / DEV_KEY_NAME}; pass --key for a release",
            file=sys.stderr,
        )
    types = device_types or [f"headshot-kiosk-{fields['Architecture']}"]
    artifact = out / f"{fields['Package']}-{version.replace(':', '_')}.mender"
    public = out / PUBLIC_KEY_NAME
    with tempfile.TemporaryDirectory(prefix="build-ota-") as work:
        signing = Path(work) / "signing.pem"
        fd = os.open(signing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        unsigned = Path(work) / "unsigned.mender"
        signed = Path(work) / "signed.mender"
        write = ["mender-artifact", "write", "module-image", "--compression", "none", "-T", PAYLOAD_TYPE]
        write += ["-n", f"{fields['Package']}-{version}", "-f", str(deb), "-o", str(unsigned)]
        write += ["--software-name", SOFTWARE_NAME, "--software-version", version]
        for device_type in types:
            write += ["-t", device_type]
        _run(write)  # a .deb is compressed already: "none" saves minutes on a large wheelhouse
        _run(["mender-artifact", "sign", "-k", str(signing), "-o", str(signed), str(unsigned)])
        verify = Path(work) / PUBLIC_KEY_NAME
        verify.write_bytes(public_pem)
        _run(["mender-artifact", "validate", "-k", str(verify), str(signed)])
        shutil.move(signed, artifact)
        artifact.chmod(0o644)  # public content; mender-artifact writes 0600
        public.write_bytes(public_pem)
    return artifact, public


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", type=Path, required=True, help="the headshot-kiosk .deb to ship")
    parser.add_argument("--out", type=Path, default=Path("build/ota"), help="output directory")
    parser.add_argument(
        "--key",
        type=Path,
        default=None,
        help="signing key, PEM (default $HK_OTA_SIGNING_KEY, else a dev key)",
    )
    parser.add_argument(
        "--device-type",
        action="append",
        default=[],
        help="Mender device type the artifact is for; repeatable (default headshot-kiosk-<arch>)",
    )
    args = parser.parse_args(argv)
    key = args.key or (
        Path(os.environ["HK_OTA_SIGNING_KEY"]) if os.environ.get("HK_OTA_SIGNING_KEY") else None
    )
    try:
        artifact, public = build(args.deb, args.out, key, args.device_type)
    except BuildError as exc:
        print(f"build_ota: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {artifact} (signed, validated)")
    print(f"wrote {public} (ArtifactVerifyKey for the kiosks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
