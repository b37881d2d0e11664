"""The page's pure parts (share-link parsing, placeholders, the server-sent-event reader) under
Node's test runner: ``web/test/*.test.mjs``. Skipped locally without Node.js; required in CI."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.server_process import ROOT
from tests.support.services import require_service

pytestmark = pytest.mark.node


def test_the_web_unit_tests_pass() -> None:
    node = shutil.which("node")
    require_service("Node.js", node is not None)
    assert node is not None
    result = subprocess.run(
        [node, "--test", "test/"],
        cwd=ROOT / "web",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout
