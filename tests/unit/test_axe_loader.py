"""The axe-core loader of the accessibility tests uses a tarball only when its sha512 matches the
pinned registry integrity, whether downloaded or cached."""

from __future__ import annotations

import io
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser import axe


def _tarball(script: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("package/axe.min.js")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


GOOD = _tarball(b"window.axe = 'pinned';")
EVIL = _tarball(b"window.axe = 'swapped';")


@pytest.fixture()
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The registry serves ``served["body"]``; the pinned integrity is GOOD's."""
    served: dict[str, Any] = {"body": GOOD, "requests": 0}

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        assert url == axe.AXE_URL
        served["requests"] += 1
        return io.BytesIO(served["body"])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(axe, "AXE_INTEGRITY", axe._integrity(GOOD))
    return served


def test_download_is_verified_then_cached(registry: dict[str, Any], tmp_path: Path) -> None:
    assert axe.load_axe_source(tmp_path) == "window.axe = 'pinned';"
    assert axe.load_axe_source(tmp_path) == "window.axe = 'pinned';"
    assert registry["requests"] == 1


def test_a_download_with_another_digest_is_refused(
    registry: dict[str, Any], tmp_path: Path
) -> None:
    registry["body"] = EVIL
    with pytest.raises(axe.AxeUnavailable, match="does not match the pinned integrity"):
        axe.load_axe_source(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing cached


def test_a_tampered_cache_is_replaced_by_a_verified_download(
    registry: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / f"axe-core-{axe.AXE_VERSION}.tgz").write_bytes(EVIL)
    assert axe.load_axe_source(tmp_path) == "window.axe = 'pinned';"
    assert registry["requests"] == 1
