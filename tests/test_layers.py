"""The packages import one way: providers know nothing of StreamDesk, and inside StreamDesk
web > chat > store > settings/logs/metrics (the contracts are in pyproject.toml)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # --no-cache: the check must look at the files as they are now.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_check_fails_when_a_provider_imports_streamdesk(tmp_path):
    for folder in ("providers", "streamdesk"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    demo = tmp_path / "providers" / "demo.py"
    demo.write_text(demo.read_text() + "\nfrom streamdesk.chat.events import Delta  # upward\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "providers import nothing from streamdesk BROKEN" in result.stdout
    assert "providers.demo -> streamdesk.chat.events" in result.stdout
