"""Running the ``sidra`` command as a user does: a child process, its exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

SIDRA = [sys.executable, "-m", "sidra.cli"]


def run_sidra(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``sidra ARGS...`` to completion; the caller checks the exit code."""
    return subprocess.run(
        [*SIDRA, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def sidra_json(*args: str, timeout: float = 120.0) -> Any:
    """``sidra ARGS... --json``: must succeed; returns the JSON it printed."""
    result = run_sidra(*args, "--json", timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
