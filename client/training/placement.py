"""Where a network's layers go on a board: tiles handed out layer by layer, in order.

A layer of ``rows`` weight-matrix rows (its inputs and, unless digital, the bias
row) and ``outputs`` columns needs ``ceil(rows / tile rows)`` row blocks times
``ceil(outputs / outputs per tile)`` output blocks, one tile each (the analog
layer adds the row blocks' partial sums on the host and places output blocks side
by side). :func:`place` gives each layer the next tiles it needs from the tiles
allowed, or the tiles a job fixed for it, and refuses a network that does not fit
with a message naming the layer, its size and what the board has left for it.

A run allowed any tile takes the board's tiles in :func:`tile_order`: on a shared
board, those nobody else uses first (``Board.tile_use``), so a second user's run
goes to a free tile instead of being refused at the first one, taken. :func:`claimed`
places a run's layers so and takes their tiles at once; another client that took one
of them since the board was asked makes it ask and place again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidra.drivers import Board, BoardInfo, LeaseHeld, TileUse, tiles_text

__all__ = [
    "LayerShape",
    "Placement",
    "PlacementError",
    "chain",
    "claimed",
    "named_tiles",
    "place",
    "refuse_deployed",
    "resumed_order",
    "tile_order",
]


class PlacementError(ValueError):
    """The network does not fit the tiles it may use (names the layer and its size)."""


@dataclass(frozen=True, slots=True)
class LayerShape:
    """What a layer occupies on the array."""

    name: str
    inputs: int
    """Inputs of the layer (the weight matrix has one more row for the bias)."""
    outputs: int
    pair: int = 1
    """Columns per output: 2 with the differential mapping."""
    reference_column: bool = False
    """One extra column per tile (the offset mapping's drifting reference)."""
    digital_bias: bool = False
    """The bias is added on the host: no bias row on the array."""

    @property
    def rows(self) -> int:
        """Weight-matrix rows held on the array."""
        return self.inputs + int(not self.digital_bias)

    def outputs_per_tile(self, info: BoardInfo) -> int:
        return (info.cols - int(self.reference_column)) // self.pair

    def tiles_needed(self, info: BoardInfo) -> int:
        """Row blocks times output blocks; 0 when no tile can hold one output."""
        per_tile = self.outputs_per_tile(info)
        if per_tile < 1:
            return 0
        return math.ceil(self.rows / info.rows) * math.ceil(self.outputs / per_tile)

    def describe(self) -> str:
        """``"features: 300+1 x 256"``, as the errors and the records say it."""
        bias = "" if self.digital_bias else "+1"
        extra = ", differential" if self.pair == 2 else ""
        extra += ", reference column" if self.reference_column else ""
        return f"{self.name}: {self.inputs}{bias} x {self.outputs}{extra}"


def chain(widths: Sequence[int], prefix: str, *, digital_bias: bool) -> list[LayerShape]:
    """The layers of a stack of ``widths`` (input first): ``<prefix>0`` is
    ``widths[0] x widths[1]``, ``<prefix>1`` the next, and so on."""
    return [
        LayerShape(f"{prefix}{i}", n_in, n_out, digital_bias=digital_bias)
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]


@dataclass(frozen=True, slots=True)
class Placement:
    """The tiles of each layer, in network order."""

    tiles: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def of(self, name: str) -> tuple[int, ...]:
        return self.tiles[name]

    @property
    def used(self) -> tuple[int, ...]:
        """Every tile some layer is on, ascending (what a job leases)."""
        return tuple(sorted({t for tiles in self.tiles.values() for t in tiles}))

    def summary(self) -> dict[str, list[int]]:
        """``{"layer": [0, 1]}``: what a run record's settings and the CLI summary show."""
        return {name: list(tiles) for name, tiles in self.tiles.items()}


def tile_order(board: Board, going_on_from: Mapping[str, Any] | None = None) -> tuple[int, ...]:
    """The order a layer allowed any tile of ``board`` takes them in.

    A run going on from a checkpoint (``going_on_from``: the settings it keeps) takes the
    tiles it ran on first, in its placement's order: its weights were trained on those
    devices (:func:`resumed_order`). Any other run: those nobody else uses first, then
    those holding a deployed model (a run takes them only when it names them:
    :func:`refuse_deployed`), then those another session leases (``Board.tile_use``; a
    board this process alone uses: 0 first)."""
    count = board.info.tile_count
    return resumed_order(going_on_from, count) or board.tile_use().order(count)


CLAIM_TRIES = 3
"""How often a run places its layers anew when a tile it chose was taken meanwhile."""


def claimed(
    board: Board,
    place_in: Callable[[tuple[int, ...]], Placement],
    going_on_from: Mapping[str, Any] | None = None,
    *,
    named: Iterable[int] = (),
) -> Placement:
    """A run's layers placed by ``place_in`` given the board's :func:`tile_order`, their
    tiles taken at once (``Board.claim_tiles``: a served board's session leases them).
    A tile holding a deployed model is taken only when ``named`` (the tiles the run's
    options name) holds it (:func:`refuse_deployed`).

    The tiles in use are asked before the lease, so another client may lease one of
    them in between: the board is then asked again and the layers placed anew, up to
    :data:`CLAIM_TRIES` times. :class:`~sidra.drivers.errors.LeaseHeld` when the new
    placement is the one refused (the tiles were named, or no other tile is left)."""
    refused: Placement | None = None
    tries = 0
    while True:
        use = board.tile_use()  # asked once a try: leases and deployments
        order = resumed_order(going_on_from, board.info.tile_count)
        placement = place_in(order or use.order(board.info.tile_count))
        refuse_deployed(use, placement.used, named)
        tries += 1
        try:
            board.claim_tiles(placement.used)
        except LeaseHeld:
            if placement == refused or tries == CLAIM_TRIES:
                raise
            refused = placement
        else:
            return placement


def named_tiles(options: Any) -> frozenset[int]:
    """The tiles a run's ``options`` name (``tiles``, ``head_tiles``, ``feature_tile``):
    those it may write over a deployed model on."""
    named: set[int] = set()
    for name in ("tiles", "head_tiles"):
        named.update(getattr(options, name, None) or ())
    feature = getattr(options, "feature_tile", None)
    if feature is not None:
        named.add(feature)
    return frozenset(named)


def refuse_deployed(use: TileUse, used: Iterable[int], named: Iterable[int] = ()) -> None:
    """PlacementError when tiles of ``used`` the user did not name (``named``) hold an
    intact deployed model (``use``: ``Board.tile_use``). A run or an evaluation free to
    choose its tiles took them once the free ones were too few, and a colleague's
    deployment was written over without a word. Named, they are written over (as the user
    asked); a board with no server (no deployments) never refuses."""
    over = sorted(set(used) & use.deployed - set(named))
    if over:
        raise PlacementError(
            f"{tiles_text(over)} {'holds' if len(over) == 1 else 'hold'} a deployed model "
            "(sidra model list names it) and no other tile is free for this: a run given "
            "no tiles does not write over one; name the tiles with --tile to write over "
            "it, or free them (sidra model undeploy)"
        )


def resumed_order(settings: Mapping[str, Any] | None, tile_count: int) -> tuple[int, ...]:
    """Every tile of a board of ``tile_count``, those a run's ``settings`` (a record's or
    a checkpoint's) place its layers on first, in that order, the rest ascending; empty
    when the settings name no placement on such a board."""
    placed = (settings or {}).get("placement")
    if not isinstance(placed, Mapping):
        return ()
    first = [t for tiles in placed.values() if isinstance(tiles, list) for t in tiles]
    if not all(type(t) is int and 0 <= t < tile_count for t in first):
        return ()
    first = list(dict.fromkeys(first))
    return (*first, *(t for t in range(tile_count) if t not in first))


def place(
    info: BoardInfo,
    layers: Sequence[LayerShape],
    *,
    allowed: Sequence[int] = (),
    fixed: Mapping[str, Sequence[int]] | None = None,
    order: Sequence[int] = (),
) -> Placement:
    """Tiles for ``layers``, in order: a layer named in ``fixed`` gets those tiles (checked
    to be enough and not shared), every other the next free ones of ``allowed`` (empty:
    every tile of the board, in ``order``: :func:`tile_order`; empty, 0 first)."""
    fixed = fixed or {}
    count = info.tile_count
    for tile in [*allowed, *(t for tiles in fixed.values() for t in tiles)]:
        if not 0 <= tile < count:
            raise PlacementError(
                f"tiles: got tile {tile}, expected tiles in 0 .. {count - 1} (the board's "
                f"{count}; --tile, or the tiles= option)"
            )
    if order and sorted(order) != list(range(count)):
        raise PlacementError(f"order: got {list(order)}, expected each of 0 .. {count - 1} once")
    anywhere = order or range(count)
    free = [t for t in (allowed or anywhere) if not any(t in f for f in fixed.values())]
    free = list(dict.fromkeys(free))  # each tile once, in the order given
    placed: dict[str, tuple[int, ...]] = {}
    taken: set[int] = set()
    for layer in layers:
        need = layer.tiles_needed(info)
        if need == 0:
            raise PlacementError(
                f"layer {layer.describe()} cannot be placed: a tile of {info.cols} columns "
                f"holds no output of it"
            )
        if layer.name in fixed:
            tiles = tuple(fixed[layer.name])
            if len(tiles) < need or taken & set(tiles):
                raise PlacementError(
                    f"layer {layer.describe()} needs {need} tile(s) of {info.rows} x "
                    f"{info.cols} of its own; given tiles {list(tiles)}"
                    + (
                        f", {sorted(taken & set(tiles))} already in use"
                        if taken & set(tiles)
                        else ""
                    )
                )
        else:
            if need > len(free):
                raise PlacementError(_too_big(info, layer, need, free, placed))
            tiles, free = tuple(free[:need]), free[need:]
        taken.update(tiles)
        placed[layer.name] = tiles
    return Placement(placed)


def _too_big(
    info: BoardInfo,
    layer: LayerShape,
    need: int,
    free: list[int],
    placed: Mapping[str, tuple[int, ...]],
) -> str:
    before = "; ".join(f"{name} on {list(tiles)}" for name, tiles in placed.items())
    return (
        f"layer {layer.describe()} needs {need} tile(s) of {info.rows} x {info.cols}; "
        f"the board has {info.tile_count}, {len(free)} left for it ({free})"
        + (f" after {before}" if before else "")
        + f"; {_what_fits(info, layer, len(free))}: use fewer inputs or outputs (a "
        "narrower hidden layer), or allow more tiles (--tile, or the tiles= option)"
    )


def _what_fits(info: BoardInfo, layer: LayerShape, free: int) -> str:
    """The most outputs ``free`` tiles hold for the layer's inputs, as a refusal says it:
    the width a hidden layer could have there."""
    row_blocks = math.ceil(layer.rows / info.rows)
    most = free // row_blocks * layer.outputs_per_tile(info)
    tiles = f"{free} tile(s)"
    if most == 0:
        return f"its {layer.rows} rows alone take {row_blocks} tile(s), {tiles} are left"
    return f"with its {layer.rows} rows, {tiles} hold at most {most} outputs"
