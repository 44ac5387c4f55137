"""The README's client example runs as written against a served emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidra.drivers import BoardDriver

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_client_example_runs(
    served: tuple[BoardDriver, int], capsys: pytest.CaptureFixture[str]
) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(example.strip().splitlines()) <= 25
    namespace: dict[str, object] = {}
    exec(example.replace("127.0.0.1:50051", f"127.0.0.1:{served[1]}"), namespace)  # noqa: S102
    assert namespace["currents"].shape == (64, 256)  # type: ignore[attr-defined]
    assert namespace["delta"].shape == (65, 10)  # type: ignore[attr-defined]
    assert "voltages" in capsys.readouterr().out
