"""axe-core for the accessibility tests: one pinned release from the npm registry, checked
against the registry's published sha512 integrity, cached in a git-ignored directory.

Only Python is needed on a fresh clone (no npm): the first run downloads the 0.7 MB tarball once,
later runs read the cache. To move to another release, change ``AXE_VERSION`` and
``AXE_INTEGRITY`` together (``npm view axe-core@<version> dist.integrity`` prints the value).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

AXE_VERSION = "4.14.1"
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
AXE_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
CACHE_DIR = Path(os.environ.get("REVIEWAPP_TEST_AXE_CACHE", Path(__file__).parent / ".axe-cache"))
# Impacts that fail a page; "moderate" and "minor" findings are printed by the report only.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


class AxeUnavailable(RuntimeError):
    """axe-core could not be downloaded or its bytes did not match the pinned integrity."""


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def load_axe_source(cache_dir: Path = CACHE_DIR) -> str:
    """Return the text of ``axe.min.js`` for ``AXE_VERSION``.

    The registry tarball is cached as ``<cache_dir>/axe-core-<version>.tgz`` (downloaded when
    missing; offline, put it there by hand) and checked against ``AXE_INTEGRITY`` on every
    call, before anything is read from it. Raises ``AxeUnavailable`` on a network failure, an
    integrity mismatch or a tarball without ``package/axe.min.js``.
    """
    cached = cache_dir / f"axe-core-{AXE_VERSION}.tgz"
    if cached.is_file() and _integrity(cached.read_bytes()) == AXE_INTEGRITY:
        tarball = cached.read_bytes()
    else:
        try:
            with urllib.request.urlopen(AXE_URL, timeout=60) as response:  # noqa: S310 - fixed https URL
                tarball = response.read()
        except OSError as exc:
            raise AxeUnavailable(f"could not download {AXE_URL}: {exc}") from exc
        actual = _integrity(tarball)
        if actual != AXE_INTEGRITY:
            raise AxeUnavailable(
                f"{AXE_URL} does not match the pinned integrity: expected {AXE_INTEGRITY}, got {actual}"
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        partial.write_bytes(tarball)
        partial.replace(cached)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        try:
            member = archive.extractfile("package/axe.min.js")
        except KeyError:
            member = None
        if member is None:
            raise AxeUnavailable(f"{AXE_URL} has no package/axe.min.js")
        return member.read().decode("utf-8")


def blocking_violations(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The violations of ``results`` (axe.run output) whose impact is serious or critical."""
    return [v for v in results["violations"] if v.get("impact") in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation and node: ``rule-id [impact] selector: failure summary``."""
    lines = []
    for violation in violations:
        for node in violation["nodes"]:
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(
                f"{violation['id']} [{violation.get('impact')}] {' '.join(map(str, node['target']))}"
                f": {summary[:240]}"
            )
    return "\n".join(lines)
