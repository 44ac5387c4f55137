"""Figures for run records and commands, drawn without pyplot.

pyplot keeps every open figure in a process-wide registry and draws through one
process-wide backend: a library function calling ``matplotlib.use("Agg")`` switches a
notebook's backend under its user, and two threads drawing at once (two jobs ending
together in one server) share that state. A :class:`~matplotlib.figure.Figure` made
directly belongs to no registry, needs no closing, and renders to PNG, SVG or PDF on a
canvas of its own (matplotlib's advice for servers). matplotlib is the ``training``
extra's, imported when the first figure is drawn.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_bytes", "new_figure"]


def new_figure(**options: Any) -> Figure:
    """A figure of its own (``options``: :class:`~matplotlib.figure.Figure`'s, such as
    ``figsize`` in inches); its axes come from ``figure.subplots(...)``."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib's import is ~0.3 s

    return Figure(**options)


def figure_bytes(figure: Figure, file_format: str = "png", dpi: float = 100.0) -> bytes:
    """``figure`` rendered as a ``file_format`` file (png, svg, pdf), at ``dpi`` dots per
    inch for a raster."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=file_format, dpi=dpi)
    return buffer.getvalue()
