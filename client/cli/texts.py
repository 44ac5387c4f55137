"""How the command line's tables write a figure, a size, tiles, a moment and a time span, so that
a run's end, ``sidra runs show``, ``sidra jobs show`` and ``sidra status`` say each
the same way (``--json`` and the record's files keep the numbers as they are). Tiles are
named as the service's messages name them (:func:`sidra.drivers.tiles_text`)."""

from __future__ import annotations

import time
from typing import Any

from sidra.drivers.types import tiles_text

__all__ = [
    "count_text", "duration_text", "figure_text", "size_text", "tiles_text", "when_text",
]  # fmt: skip


def figure_text(key: str, value: Any) -> str:
    """A figure of a run's summary as a person reads it: an accuracy in per cent, counts
    and modeled nanoseconds or nanojoules with thousands separated, other figures to four
    significant digits, a placement (layer -> tiles) as its tiles, a figure per layer as
    a list of them, each named by its layer (``layer0``, as a placement names it)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and key.endswith("accuracy"):
        return f"{100 * value:.2f} %"
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1e4):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and all(_tile_list(v) for v in value.values()):
        return "; ".join(f"{k}: {tiles_text(v)}" for k, v in value.items())  # a placement
    if isinstance(value, dict):  # figures of their own (a tuned model's tuned_from)
        return "; ".join(f"{k} {figure_text(k, v)}" for k, v in value.items())
    if isinstance(value, list):  # a figure per layer (gradient_cosine), named as placed
        return ", ".join(f"layer{i} {_layer_figure(key, v)}" for i, v in enumerate(value))
    return str(value)


def _layer_figure(key: str, value: Any) -> str:
    """One layer's figure; None where the run measured none for it (a layer left frozen
    by --trainable has no gradient to compare): it read "layer0 None"."""
    return "not measured" if value is None else figure_text(key, value)


def size_text(size_bytes: int) -> str:
    """A size as a person reads it: ``78.2 kB``, ``1.3 GB`` (decimal units), ``512 B``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def count_text(number: int, noun: str) -> str:
    """A count and what it counts: ``1 file``, ``2,400 records`` (``noun`` singular, its
    plural made with an s)."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def duration_text(seconds: float) -> str:
    """A span of wall time: ``42.0 s`` under two minutes, ``7.5 min`` under two hours,
    then ``3.2 h``."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def when_text(unix_s: float, *, seconds: bool = False) -> str:
    """A moment as a lab reads it: the local date and time to the minute (to the second
    with ``seconds``: a job's start and end); "" for 0, the service's "not yet"."""
    if not unix_s:
        return ""
    return time.strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(unix_s)
    )


def _tile_list(value: Any) -> bool:
    """Whether ``value`` is a list of tile indices (a placement's entry)."""
    return isinstance(value, list) and all(type(t) is int for t in value)
