"""A small TOML writer for board profiles (the standard library only reads TOML)."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps"]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"toml: got {value!r}, expected a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"toml: cannot write {type(value).__name__}")


def _is_table_list(value: Any) -> bool:
    return (
        isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _table(data: dict[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    nested = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_table_list(value):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_value(value)}")
    for key, value in nested:
        name = ".".join((*path, key))
        if isinstance(value, dict):
            lines.extend(["", f"[{name}]"])
            _table(value, (*path, key), lines)
        else:
            for item in value:
                lines.extend(["", f"[[{name}]]"])
                _table(item, (*path, key), lines)


def dumps(data: dict[str, Any], header: str = "") -> str:
    """``data`` (nested dicts of numbers, strings, booleans, lists and lists of dicts) as
    TOML; ``header`` lines become comments at the top."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    _table(data, (), lines)
    return "\n".join(lines) + "\n"
