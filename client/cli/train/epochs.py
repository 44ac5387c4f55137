"""``sidra train last-layer | mlp | ff | eqprop``: networks trained in whole epochs."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from sidra.cli.options import AsJson, field_option, job_options
from sidra.cli.train.like import Like
from sidra.cli.train.params import (
    ANY_TILE,
    BoardUrl,
    CheckpointEveryS,
    Dataset,
    Out,
    Priority,
    QueueJob,
    RemoteJob,
    Resume,
    ServerAddress,
)
from sidra.cli.train.running import by_epochs
from sidra.training import (
    EqPropOptions,
    FFEstimator,
    FFOptions,
    LastLayerOptions,
    MLPOptions,
    Nudging,
    train_eqprop,
    train_forward_forward,
    train_last_layer,
    train_mlp,
)

__all__ = ["eqprop", "forward_forward", "last_layer", "mlp"]


_LAST_LAYER = LastLayerOptions()
_MLP = MLPOptions()
_MLP_HIDDEN = list(_MLP.hidden)
_FF = FFOptions()
_FF_HIDDEN = list(_FF.hidden)
_EQPROP = EqPropOptions()
_EQPROP_HIDDEN = list(_EQPROP.hidden)
_last_layer = functools.partial(field_option, LastLayerOptions)
_mlp = functools.partial(field_option, MLPOptions)
_ff = functools.partial(field_option, FFOptions)
_eqprop = functools.partial(field_option, EqPropOptions)


def last_layer(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[int, _last_layer("hidden")] = _LAST_LAYER.hidden,
    epochs: Annotated[int, _last_layer("epochs")] = _LAST_LAYER.epochs,
    batch_size: Annotated[int, _last_layer("batch_size")] = _LAST_LAYER.batch_size,
    learning_rate: Annotated[float, _last_layer("learning_rate")] = _LAST_LAYER.learning_rate,
    final_learning_rate: Annotated[
        float | None, _last_layer("final_learning_rate")
    ] = _LAST_LAYER.final_learning_rate,
    threshold: Annotated[float, _last_layer("threshold")] = _LAST_LAYER.threshold,
    trainable: Annotated[int, _last_layer("trainable")] = _LAST_LAYER.trainable,
    seed: Annotated[int, _last_layer("seed")] = _LAST_LAYER.seed,
    feature_tile: Annotated[int | None, _last_layer("feature_tile")] = None,
    head_tiles: Annotated[list[int] | None, _last_layer("head_tiles")] = None,
    tiles: Annotated[list[int], _last_layer("tiles", "--tiles", "--tile")] = ANY_TILE,
    read_repeats: Annotated[int, _last_layer("read_repeats")] = _LAST_LAYER.read_repeats,
    digital_bias: Annotated[bool, _last_layer("digital_bias")] = _LAST_LAYER.digital_bias,
    head_weight_limit: Annotated[
        float, _last_layer("head_weight_limit")
    ] = _LAST_LAYER.head_weight_limit,
    resume: Resume = False,
    checkpoint_every_s: CheckpointEveryS = None,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Fixed random feature layer on the board, head trained with exact gradients.

    Ctrl-C stops the run after the epoch under way and keeps its record and a
    checkpoint in --out (exit 130; the same command with --resume goes on); a second
    Ctrl-C stops at once. A board gone mid-way keeps them too (exit 1)."""
    # typer gives an option never named as an empty list: no head tiles means "placed".
    options = job_options(LastLayerOptions, ctx, head_tiles=head_tiles or None)
    by_epochs(
        "last-layer", train_last_layer, options, dataset, board, server, out, remote_job,
        as_json, resume, every_s=checkpoint_every_s, queue=queue, priority=priority, ctx=ctx,
    )  # fmt: skip


def mlp(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[list[int], _mlp("hidden")] = _MLP_HIDDEN,
    epochs: Annotated[int, _mlp("epochs")] = _MLP.epochs,
    batch_size: Annotated[int, _mlp("batch_size")] = _MLP.batch_size,
    learning_rate: Annotated[float, _mlp("learning_rate")] = _MLP.learning_rate,
    final_learning_rate: Annotated[
        float | None, _mlp("final_learning_rate")
    ] = _MLP.final_learning_rate,
    threshold: Annotated[float, _mlp("threshold")] = _MLP.threshold,
    weight_limit: Annotated[float, _mlp("weight_limit")] = _MLP.weight_limit,
    read_repeats: Annotated[int, _mlp("read_repeats")] = _MLP.read_repeats,
    eval_read_repeats: Annotated[int | None, _mlp("eval_read_repeats")] = _MLP.eval_read_repeats,
    digital_bias: Annotated[bool, _mlp("digital_bias")] = _MLP.digital_bias,
    cosine_every: Annotated[int, _mlp("cosine_every")] = _MLP.cosine_every,
    seed: Annotated[int, _mlp("seed")] = _MLP.seed,
    tiles: Annotated[list[int], _mlp("tiles", "--tiles", "--tile")] = ANY_TILE,
    trainable: Annotated[int | None, _mlp("trainable")] = _MLP.trainable,
    resume: Resume = False,
    checkpoint_every_s: CheckpointEveryS = None,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Every layer on the board: forward by MVM, backward by TransposeMVM.

    The summary gives each layer's gradient cosine to the exact gradient.

    Ctrl-C stops the run after the epoch under way and keeps its record and a
    checkpoint in --out (exit 130; the same command with --resume goes on); a second
    Ctrl-C stops at once. A board gone mid-way keeps them too (exit 1)."""
    options = job_options(MLPOptions, ctx)
    by_epochs(
        "mlp", train_mlp, options, dataset, board, server, out, remote_job, as_json, resume,
        every_s=checkpoint_every_s, queue=queue, priority=priority, ctx=ctx,
    )  # fmt: skip


def forward_forward(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[list[int], _ff("hidden")] = _FF_HIDDEN,
    estimator: Annotated[FFEstimator, _ff("estimator")] = _FF.estimator,
    epochs: Annotated[int, _ff("epochs")] = _FF.epochs,
    batch_size: Annotated[int, _ff("batch_size")] = _FF.batch_size,
    learning_rate: Annotated[float, _ff("learning_rate")] = _FF.learning_rate,
    final_learning_rate: Annotated[
        float | None, _ff("final_learning_rate")
    ] = _FF.final_learning_rate,
    goodness_threshold: Annotated[float, _ff("goodness_threshold")] = _FF.goodness_threshold,
    label_scale: Annotated[float, _ff("label_scale")] = _FF.label_scale,
    spsa_a: Annotated[float, _ff("spsa_a")] = _FF.spsa_a,
    spsa_c: Annotated[float, _ff("spsa_c")] = _FF.spsa_c,
    resamplings: Annotated[int, _ff("resamplings")] = _FF.resamplings,
    eval_every: Annotated[int, _ff("eval_every")] = _FF.eval_every,
    threshold: Annotated[float, _ff("threshold")] = _FF.threshold,
    weight_limit: Annotated[float, _ff("weight_limit")] = _FF.weight_limit,
    read_repeats: Annotated[int, _ff("read_repeats")] = _FF.read_repeats,
    digital_bias: Annotated[bool | None, _ff("digital_bias")] = _FF.digital_bias,
    seed: Annotated[int, _ff("seed")] = _FF.seed,
    tiles: Annotated[list[int], _ff("tiles", "--tiles", "--tile")] = ANY_TILE,
    resume: Resume = False,
    checkpoint_every_s: CheckpointEveryS = None,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Forward-forward: each layer trained on its own goodness, no backward pass.

    Every layer's forward passes run on the board; each layer learns from its own
    goodness (exact local gradient, or layer-local SPSA).

    Ctrl-C stops the run after the epoch under way and keeps its record and a
    checkpoint in --out (exit 130; the same command with --resume goes on); a second
    Ctrl-C stops at once. A board gone mid-way keeps them too (exit 1)."""
    options = job_options(FFOptions, ctx)
    by_epochs(
        "ff", train_forward_forward, options, dataset, board, server, out, remote_job,
        as_json, resume, every_s=checkpoint_every_s, queue=queue, priority=priority, ctx=ctx,
    )  # fmt: skip


def eqprop(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[list[int], _eqprop("hidden")] = _EQPROP_HIDDEN,
    epochs: Annotated[int, _eqprop("epochs")] = _EQPROP.epochs,
    batch_size: Annotated[int, _eqprop("batch_size")] = _EQPROP.batch_size,
    learning_rate: Annotated[float, _eqprop("learning_rate")] = _EQPROP.learning_rate,
    final_learning_rate: Annotated[
        float | None, _eqprop("final_learning_rate")
    ] = _EQPROP.final_learning_rate,
    beta: Annotated[float, _eqprop("beta")] = _EQPROP.beta,
    nudging: Annotated[Nudging, _eqprop("nudging")] = _EQPROP.nudging,
    free_iterations: Annotated[int, _eqprop("free_iterations")] = _EQPROP.free_iterations,
    nudged_iterations: Annotated[int, _eqprop("nudged_iterations")] = _EQPROP.nudged_iterations,
    tolerance: Annotated[float, _eqprop("tolerance")] = _EQPROP.tolerance,
    damping: Annotated[float, _eqprop("damping")] = _EQPROP.damping,
    threshold: Annotated[float, _eqprop("threshold")] = _EQPROP.threshold,
    weight_limit: Annotated[float, _eqprop("weight_limit")] = _EQPROP.weight_limit,
    read_repeats: Annotated[int, _eqprop("read_repeats")] = _EQPROP.read_repeats,
    init_scale: Annotated[float, _eqprop("init_scale")] = _EQPROP.init_scale,
    cosine_every: Annotated[int, _eqprop("cosine_every")] = _EQPROP.cosine_every,
    seed: Annotated[int, _eqprop("seed")] = _EQPROP.seed,
    tiles: Annotated[list[int], _eqprop("tiles", "--tiles", "--tile")] = ANY_TILE,
    resume: Resume = False,
    checkpoint_every_s: CheckpointEveryS = None,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Equilibrium propagation: free and nudged phases settle on the same tiles.

    The phases settle by MVM and TransposeMVM; the local update contrasts their
    equilibria. The summary gives the settling cost.

    Ctrl-C stops the run after the epoch under way and keeps its record and a
    checkpoint in --out (exit 130; the same command with --resume goes on); a second
    Ctrl-C stops at once. A board gone mid-way keeps them too (exit 1)."""
    options = job_options(EqPropOptions, ctx)
    by_epochs(
        "eqprop", train_eqprop, options, dataset, board, server, out, remote_job, as_json,
        resume, every_s=checkpoint_every_s, queue=queue, priority=priority, ctx=ctx,
    )  # fmt: skip
