"""``sidra model show``: what a model file holds, read without a board (nor the code
that opens one)."""

from __future__ import annotations

import json
from typing import Any

import numpy.typing as npt
import typer
from rich.table import Table

from sidra.cli.consoles import output_console
from sidra.cli.model_files import ModelPath, file_target
from sidra.cli.options import AsJson
from sidra.cli.texts import figure_text
from sidra.training.model import GoodnessReadout, SettleReadout

__all__ = ["show"]


def show(model: ModelPath, as_json: AsJson = False) -> None:
    """A model's layers, inputs, labels and where it was trained."""
    loaded = file_target(model).model
    meta = loaded.meta()
    shapes = loaded.shapes()
    meta["layers"] = [
        {"layer": shape.name, "shape": [layer.inputs + 1, layer.outputs], **layer.settings()}
        for shape, layer in zip(shapes, loaded.layers, strict=True)
    ]
    if as_json:
        typer.echo(json.dumps(meta))
        return
    console = output_console()
    table = Table(title=f"{model}: {loaded.job} on {loaded.inputs.dataset}")
    for column in ("layer", "weights", "mapping", "weight limit", "input clip", "bias"):
        table.add_column(column)
    for shape, layer in zip(shapes, loaded.layers, strict=True):
        table.add_row(
            shape.name,
            f"{layer.inputs}+1 x {layer.outputs}",
            layer.mapping.value + (", reference column" if layer.reference_column else ""),
            f"{layer.weight_limit:.4g}",
            f"{layer.input_clip:.4g}",
            "digital" if layer.digital_bias else "on the array",
        )
    console.print(table)
    inputs = loaded.inputs
    console.print(
        f"inputs: {loaded.features} features of {inputs.dataset}, each (raw - mean) / scale: "
        f"mean {_spread(inputs.feature_mean)}, scale {_spread(inputs.feature_scale)}",
        highlight=False,
    )
    console.print(f"labels: {', '.join(loaded.inputs.labels)}")
    readout = loaded.readout
    if isinstance(readout, GoodnessReadout):
        console.print(
            f"readout: goodness; each sample run once per label, the label's one-hot "
            f"(scaled {readout.label_scale:g}) after its features; the highest "
            "goodness summed over the layers wins"
        )
    elif isinstance(readout, SettleReadout):
        console.print(
            "readout: settle; states in [0, 1] swept to equilibrium by MVM and "
            f"TransposeMVM (at most {readout.max_iterations} sweeps, tolerance "
            f"{readout.tolerance:g}, damping {readout.damping:g}); the largest output wins"
        )
    for key, value in loaded.trained.items():
        console.print(f"trained {key}: {figure_text(key, value)}")  # as the run's end said it


def _spread(values: npt.NDArray[Any]) -> str:
    """One value, or the least and the largest of several: ``0``, ``0 .. 16``."""
    least, largest = float(values.min()), float(values.max())
    return f"{least:.4g}" if least == largest else f"{least:.4g} .. {largest:.4g}"
