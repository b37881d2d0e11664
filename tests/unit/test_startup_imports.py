"""What a server start must not import: every end-to-end test pays for each start-up."""

from __future__ import annotations

import subprocess
import sys

from tests.support.server_process import ROOT


def test_the_app_starts_without_importing_the_openai_package() -> None:
    # ~0.3 s of every start; only a configured LLM endpoint or the openai embedder needs it.
    probe = "import sys, server.app, server.cli; print('openai' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
