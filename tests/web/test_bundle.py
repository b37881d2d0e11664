"""The committed bundle in ``server/static/`` is exactly what the sources in ``web/`` build.

The build runs into a temporary directory with the lockfile's packages (``npm ci`` when
``web/node_modules`` is missing or older than the lockfile), then every file is compared byte for
byte. Skipped locally without npm; required in CI (the ``node`` marker).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from server.web import STATIC_DIR
from tests.support.server_process import ROOT
from tests.support.services import require_service

pytestmark = pytest.mark.node

WEB = ROOT / "web"
STAMP = WEB / "node_modules" / ".lock-sha256"


def _install_packages(npm: str) -> None:
    want = hashlib.sha256((WEB / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=WEB,
        check=True,
        timeout=600,
    )
    STAMP.write_text(want)


def _build(node: str, out: Path) -> None:
    subprocess.run([node, "build.mjs", str(out)], cwd=WEB, check=True, timeout=300)


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sources built into a fresh directory."""
    npm, node = shutil.which("npm"), shutil.which("node")
    require_service("npm and Node.js", npm is not None and node is not None)
    assert npm is not None and node is not None
    _install_packages(npm)
    out = tmp_path_factory.mktemp("bundle")
    _build(node, out)
    return out


def test_the_committed_bundle_is_what_the_sources_build(built: Path) -> None:
    committed, fresh = _files(STATIC_DIR), _files(built)
    assert sorted(committed) == sorted(fresh), "run `cd web && npm run build` and commit"
    for name, content in fresh.items():
        assert committed[name] == content, f"server/static/{name} is stale: run `npm run build`"


def test_the_build_is_reproducible(built: Path, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    _build(node, tmp_path)
    assert _files(tmp_path) == _files(built)
