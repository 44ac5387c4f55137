"""Hostile BoardService requests as hypothesis strategies, and the answer each must get.

A request is raw bytes built field by field on the wire, so it can carry what the
generated message classes refuse to build: negative numbers in unsigned fields
(a 10-byte varint, which a uint32 field keeps as its low 32 bits), enum numbers no
enum names, a field sent twice (the last one wins), unknown fields, bytes that do
not parse at all and messages over the server's size limit. Each one is hostile by
construction: it breaks a rule board.proto states for its RPC (the ``defect``
names which), and every geometry and limit comes from the board's ``BoardInfo``,
so the same strategies serve any board.

:func:`expected_code` is the oracle: what the service must answer, worked out on
this side from the same bytes (gRPC's size limit, protobuf parsing, then the
driver's own validation of the decoded request). It also guards the strategies: a
request it finds valid is a strategy that failed to be hostile, or a rule the
validation does not enforce.

Not a test module: tests/server/test_hostile_requests.py and scripts/soak_hostile.py
use it.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import strategies as st

from sidra.drivers import Board, BoardInfo, BoardStats, SidraError
from sidra.drivers.operations import OPERATIONS
from sidra.drivers.validation import CLOCK_LIMIT_S
from sidra.hil import convert
from sidra.hil.v1 import board_pb2 as pb
from sidra.server.servicer import SERVICE_NAME as SERVICE
from sidra.server.settings import LimitsSettings
from sidra.server.status import code_for

__all__ = [
    "REFUSALS",
    "Cells",
    "Hostile",
    "HostileRequests",
    "Limits",
    "Sender",
    "expected_code",
    "totals",
]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
RANGE = grpc.StatusCode.OUT_OF_RANGE
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
REFUSALS = frozenset({INVALID, RANGE, EXHAUSTED})
"""The only answers a hostile request may get."""

OPS = {op.rpc: op for op in OPERATIONS}
U64 = 2**64
U32_MAX = 2**32 - 1
F32_MAX = float(np.finfo(np.float32).max)
F32 = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Hostile:
    """One hostile request: the RPC it goes to, its bytes, and what makes it hostile."""

    rpc: str
    data: bytes
    defect: str
    """The broken rule, e.g. ``"tile"``, ``"voltages.nonfinite"``, ``"garbage"``; several
    joined by ``+`` when the request breaks more than one."""


@dataclass(frozen=True)
class Limits:
    """What the server refuses for size, as ``sidra serve`` is configured."""

    message_bytes: int
    """The server-wide ``max_message_mb``, bytes: gRPC refuses a larger message."""
    request_bytes: int
    """``[limits] max_message_mb`` of every principal, bytes: the service refuses a larger
    request before parsing it (at most ``message_bytes``)."""
    max_batch: int
    """``[limits] max_batch``: the service refuses an MVM or TransposeMVM of more
    vectors, judged from its shape before its data is read."""

    @classmethod
    def of(cls, settings: LimitsSettings, max_message_bytes: int) -> Limits:
        per_principal = settings.max_message_mb
        request = max_message_bytes if per_principal is None else per_principal * 2**20
        return cls(max_message_bytes, min(request, max_message_bytes), settings.max_batch)

    def refused_by_grpc(self, hostile: Hostile) -> bool:
        """gRPC itself refuses it (with no details: the service never sees it)."""
        return len(hostile.data) > self.message_bytes


def expected_code(hostile: Hostile, info: BoardInfo, limits: Limits) -> grpc.StatusCode:
    """The status the service must answer ``hostile`` with on a board described by
    ``info`` whose clock is far from its limit, served with ``limits`` (and room for
    the calls in flight), in the order the service checks: size, parsing, batch,
    then the request's own fields.

    Raises AssertionError when the request is valid after all.
    """
    if len(hostile.data) > limits.request_bytes:
        return EXHAUSTED
    op = OPS[hostile.rpc]
    try:
        message = getattr(pb, f"{op.rpc}Request").FromString(hostile.data)
    except DecodeError:
        return INVALID
    steps = [message]
    if isinstance(message, pb.RunSequenceRequest):  # each step as its own call
        steps = [getattr(s, m) for s in message.steps if (m := s.WhichOneof("operation"))]
    for one in steps:
        if isinstance(one, pb.MVMRequest | pb.TransposeMVMRequest | pb.PerturbedMVMRequest):
            shape = one.voltages.shape
            # A PerturbedMVM runs its batch once per point.
            points = max(len(one.points), 1) if isinstance(one, pb.PerturbedMVMRequest) else 1
            if len(shape) == 2 and shape[0] * points > limits.max_batch:
                return EXHAUSTED
    try:
        convert.request_from_pb(message, op).checked(info)
    except SidraError as exc:
        return code_for(exc)
    raise AssertionError(f"not hostile: {hostile.rpc} ({hostile.defect}) {message}")


class Sender:
    """Sends raw request bytes to a server and checks every answer against
    :func:`expected_code`; counts the codes by RPC."""

    def __init__(self, channel: grpc.Channel, info: BoardInfo, limits: Limits) -> None:
        self.calls = {op.rpc: channel.unary_unary(f"/{SERVICE}/{op.rpc}") for op in OPERATIONS}
        self.info = info
        self.limits = limits
        self.codes: Counter[tuple[str, str]] = Counter()

    def send(self, requests: list[Hostile], timeout_s: float = 60.0) -> list[str]:
        """Sends ``requests`` all at once (the server takes them on its worker threads);
        returns what was wrong with the answers, one line each (none: all as expected)."""
        calls = [self.calls[h.rpc].future(h.data, timeout=timeout_s) for h in requests]
        problems = []
        for hostile, call in zip(requests, calls, strict=True):
            what = f"{hostile.rpc} ({hostile.defect}, {len(hostile.data)} bytes)"
            expected = expected_code(hostile, self.info, self.limits)
            err = call.exception()
            if not isinstance(err, grpc.RpcError):
                problems.append(f"{what}: answered OK")
                continue
            self.codes[hostile.rpc, err.code().name] += 1
            if err.code() != expected:
                problems.append(f"{what}: {err.code().name}, not {expected.name}: {err.details()}")
            elif not self.limits.refused_by_grpc(hostile):  # gRPC's own refusal has none
                problems += [f"{what}: {p}" for p in error_info_problems(err, expected)]
        return problems


def error_info_problems(err: grpc.RpcError, code: grpc.StatusCode) -> list[str]:
    """What is missing from the google.rpc.ErrorInfo detail a refusal must carry."""
    status = rpc_status.from_call(err)
    if status is None or status.code != code.value[0]:
        return [f"no status details for {code.name}"]
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    if len(infos) != 1:
        return [f"{len(infos)} ErrorInfo details"]
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    if (info.reason, info.domain) != (code.name, "sidra.hil"):
        return [f"ErrorInfo reason {info.reason!r}, domain {info.domain!r}"]
    return []


# -- what a refusal must leave alone ----------------------------------------------------------


@dataclass(frozen=True)
class Cells:
    """Conductances and write counts of every tile, as bytes (compared exactly)."""

    conductances: bytes
    counts: bytes

    @classmethod
    def read(cls, board: Board) -> Cells:
        tiles = range(board.info.tile_count)
        g = [board.read_conductance(t).conductances.tobytes() for t in tiles]
        counts = [board.read_write_counts(t).counts.tobytes() for t in tiles]
        return cls(b"".join(g), b"".join(counts))


def totals(stats: BoardStats) -> tuple[object, ...]:
    """The running totals a refused request must not move (read them right before and
    right after: reading cells costs MVM passes)."""
    return (stats.mvm_passes, stats.cell_writes, stats.max_cell_writes, stats.clock_s,
            stats.total_cost)  # fmt: skip


# -- the wire format, by hand (https://protobuf.dev/programming-guides/encoding/) ----------

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint; a negative one as its 64-bit two's complement."""
    value %= U64
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def uint_field(number: int, value: int) -> bytes:
    return key(number, VARINT) + varint(value)


def sint_field(number: int, value: int) -> bytes:
    """A sint32/sint64 field (zigzag encoded)."""
    return uint_field(number, (value << 1) ^ (value >> 63))


def double_field(number: int, value: float) -> bytes:
    return key(number, I64) + struct.pack("<d", value)


def len_field(number: int, blob: bytes) -> bytes:
    return key(number, LEN) + varint(len(blob)) + blob


def tensor(dtype: int | None, shape: list[int] | None, data: bytes) -> bytes:
    """A Tensor message's bytes; dtype and shape may be any numbers, left out when None."""
    out = b"" if dtype is None else uint_field(1, dtype)
    if shape:
        out += len_field(2, b"".join(varint(n) for n in shape))  # packed
    return out + (len_field(3, data) if data else b"")


# -- building blocks -------------------------------------------------------------------------

FIELD_NUMBERS = {
    "Program": {"tile": 1, "row_offset": 2, "col_offset": 3, "conductances": 4},
    "ReadConductance": {"tile": 1, "region": 2},
    "MVM": {
        "tile": 1, "voltages": 2, "region": 3, "input_codes": 4, "output_codes": 5,
        "shared_inputs": 6, "shared_outputs": 7,
    },
    "TransposeMVM": {
        "tile": 1, "voltages": 2, "region": 3, "input_codes": 4, "output_codes": 5,
        "shared_inputs": 6, "shared_outputs": 7,
    },
    "Perturb": {"tile": 1, "mode": 2, "seed": 3, "amplitude_us": 4, "sign": 5, "region": 6},
    "ReadWriteCounts": {"tile": 1, "region": 2},
    "Calibrate": {"tile": 1},
    "AdvanceClock": {"seconds": 1},
    "PerturbedMVM": {"tile": 1, "voltages": 2, "points": 3, "region": 4},
    "RunSequence": {"steps": 1},
}  # fmt: skip
STEP_NUMBERS = {
    "Program": 1, "ReadConductance": 2, "MVM": 3, "TransposeMVM": 4, "Perturb": 5,
    "PerturbedMVM": 6, "ReadWriteCounts": 7, "Calibrate": 8,
}  # fmt: skip
"""SequenceStep's field number of each operation (board.proto)."""


def _check_numbers() -> None:
    # The numbers above are board.proto's: a renumbered field must fail here, not send
    # requests that are hostile only by accident.
    for rpc, fields in FIELD_NUMBERS.items():
        descriptor = getattr(pb, f"{rpc}Request").DESCRIPTOR
        assert {f.name: f.number for f in descriptor.fields} == fields, rpc
    assert {op.rpc for op in OPERATIONS} == {*FIELD_NUMBERS, "GetBoardInfo"}
    step = pb.SequenceStep.DESCRIPTOR
    assert {f.message_type.name: f.number for f in step.fields} == {
        f"{rpc}Request": number for rpc, number in STEP_NUMBERS.items()
    }


_check_numbers()

# -- what hypothesis draws: the defects and their hostile values ------------------------------
#
# Hypothesis draws cost tens of microseconds each, so it draws what matters (which RPC,
# which rules to break, the hostile values, which it biases to the edges and shrinks)
# and a seed; a numpy generator seeded with it fills in the valid rest (other fields,
# tensor contents, field order, unknown fields).

SEEDS = st.integers(0, 2**64 - 1)
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf, -math.nan])
BAD_DTYPES = st.one_of(
    st.sampled_from([0, *range(2, 8)]), st.integers(8, 2**31 - 1), st.integers(-(2**31), -1)
)
BAD_MODES = st.one_of(st.just(0), st.integers(3, 2**31 - 1), st.integers(-(2**31), -1))
BAD_SIGNS = st.one_of(
    st.sampled_from([0, 2, -2]), st.integers(2, 2**31 - 1), st.integers(-(2**31), -2)
)
BAD_SECONDS = st.one_of(
    NONFINITE,
    st.floats(max_value=-5e-324, allow_nan=False, allow_infinity=False),
    # Past the limit even from a clock at 0 (the board's is far from it).
    st.floats(CLOCK_LIMIT_S * (1 + 1e-6), 1.7e308),
)
TENSOR_DEFECTS = st.sampled_from(
    ["dtype", "unset", "ndim", "zero-dim", "huge-dim", "length", "nonfinite", "range"]
)
REGION_DEFECTS = st.sampled_from(["row_offset", "col_offset", "rows", "cols"])
NOT_TWO_DIMENSIONS = st.one_of(
    st.lists(st.integers(1, 4), max_size=1), st.lists(st.integers(1, 4), min_size=3, max_size=9)
)
BROKEN_TAILS = st.sampled_from(
    [
        b"\x00",  # field number 0
        b"\x0f",  # wire type 7
        b"\x0e",  # wire type 6
        b"\x0c",  # the end of a group that never started
        b"\x08" + b"\xff" * 10 + b"\x01",  # a varint longer than 10 bytes
        b"\x08\x80",  # a varint cut short
        b"\x09\x00\x00",  # a fixed64 cut short
    ]
)
GARBAGE = st.one_of(
    st.binary(min_size=1, max_size=200).map(lambda data: (data, b"")),
    # A length-delimited field longer than what follows it.
    st.tuples(st.binary(max_size=40), st.integers(1, 2**40)).map(
        lambda blob_more: (blob_more[0], varint(len(blob_more[0]) + blob_more[1]))
    ),
    BROKEN_TAILS.map(lambda tail: (tail, b"")),
)


@functools.cache
def uint32s_beyond(limit: int) -> st.SearchStrategy[int]:
    """What a uint32 field holds that is >= ``limit``, sent as is or as a negative number
    (two's complement, which the field truncates to 32 bits: -1 -> 4294967295)."""
    assert 0 <= limit <= U32_MAX
    return st.one_of(
        st.integers(limit, min(limit + 8, U32_MAX)),
        st.integers(limit, U32_MAX),
        st.integers(limit - 2**32, -1),  # n % 2**32 == n + 2**32 >= limit
        st.sampled_from([n for n in (U32_MAX, 2**31, 2**31 - 1) if n >= limit]),
    )


@functools.cache
def defect_sets(names: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    """One of ``names`` most of the time, now and then two or three at once (one draw)."""
    singles = [frozenset([name]) for name in names]
    several = [frozenset(c) for k in (2, 3) for c in itertools.combinations(names, k)]
    return st.sampled_from(singles * max(1, len(several) // len(singles) * 3) + several)


def float32_at_least(x: float) -> float:
    """The least float32 >= ``x`` (hypothesis wants float32 bounds exact)."""
    near = np.float32(x)
    return float(near if float(near) >= x else np.nextafter(near, np.float32(np.inf)))


def outside(low: float, high: float) -> st.SearchStrategy[float]:
    """Finite float32 values below ``low`` or above ``high`` by more than rounding."""
    above = float32_at_least(high + 1e-3 * abs(high) + 1e-3)
    below = -float32_at_least(-(low - 1e-3 * abs(low) - 1e-3))
    return st.one_of(st.floats(above, F32_MAX, width=32), st.floats(-F32_MAX, below, width=32))


def parses(rpc: str, data: bytes) -> bool:
    try:
        getattr(pb, f"{rpc}Request").FromString(data)
    except DecodeError:
        return False
    return True


# -- the valid rest, from the seed -----------------------------------------------------------


class Recipe:
    """A ``draw`` that remembers: the k-th draw from a strategy gives the same value in
    every wire form of one recipe (:meth:`again` starts the next form)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw
        self._values: dict[tuple[int, int], Any] = {}
        self._asked: Counter[int] = Counter()
        self._keep: list[object] = []  # the strategies keyed by id() stay alive

    def __call__(self, strategy: st.SearchStrategy[Any]) -> Any:
        index = self._asked[id(strategy)]
        self._asked[id(strategy)] += 1
        key = (id(strategy), index)
        if key not in self._values:
            self._values[key] = self._draw(strategy)
            self._keep.append(strategy)
        return self._values[key]

    def again(self) -> None:
        self._asked.clear()


class Parts:
    """The fields of one request being built: ``draw`` for what makes it hostile,
    ``rng`` for the valid rest; each field a chunk of bytes."""

    def __init__(self, draw: Recipe, rng: np.random.Generator) -> None:
        self.draw = draw
        self.rng = rng
        self.chunks: list[bytes] = []
        self.defects: list[str] = []

    def valid(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def hostile(self, chunk: bytes, defect: str, valid: bytes = b"") -> None:
        """A hostile chunk; ``valid``, a valid copy of the same scalar field, goes
        before it half the time (the last one wins)."""
        if valid and self.coin():
            chunk = valid + chunk
        self.chunks.append(chunk)
        self.defects.append(defect)

    def coin(self) -> bool:
        return bool(self.rng.integers(2))

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return int(self.rng.integers(low, high + 1))

    def values(self, shape: tuple[int, int], low: float, high: float) -> F32:
        """float32 values in [low, high] (the bounds as float32 are allowed)."""
        values = self.rng.uniform(low, high, shape).astype(np.float32)
        return np.clip(values, np.float32(low), np.float32(high))

    def unknown_fields(self) -> bytes:
        """One to three fields of numbers no request message has: parsed, then ignored."""
        out = b""
        for _ in range(self.between(1, 3)):
            # Request messages number their fields 1..6; 19000-19999 are reserved.
            number = self.between(16, 18999) if self.coin() else self.between(20000, 2**29 - 1)
            kind = [VARINT, I64, LEN, I32][self.between(0, 3)]
            if kind == VARINT:
                out += uint_field(number, int(self.rng.integers(0, U64, dtype=np.uint64)))
            else:
                size = {I64: 8, I32: 4, LEN: self.between(0, 32)}[kind]
                blob = self.rng.bytes(size)
                out += len_field(number, blob) if kind == LEN else key(number, kind) + blob
        return out

    def build(self, rpc: str) -> Hostile:
        assert self.defects, "a hostile request needs a defect"
        data = b"".join(self.chunks[i] for i in self.rng.permutation(len(self.chunks)))
        if self.coin():
            data += self.unknown_fields()
        return Hostile(rpc, data, "+".join(self.defects))


def valid_tensor(values: F32) -> bytes:
    return tensor(pb.DTYPE_FLOAT32, list(values.shape), values.tobytes())


def region_message(row: int, col: int, rows: int, cols: int) -> bytes:
    parts = [(1, row), (2, col), (3, rows), (4, cols)]
    return b"".join(uint_field(n, v) for n, v in parts if v != 0)


class HostileRequests:
    """The strategies for one board (``info``) served with ``limits``."""

    def __init__(
        self,
        info: BoardInfo,
        limits: Limits,
        *,
        forms: int = 4,
        oversize_share: float = 0.01,
    ) -> None:
        self.info = info
        self.limits = limits
        self.forms = forms
        """Wire forms of each recipe: the same RPC, defects and hostile values, each form
        with its own valid rest (other fields, values, field order, repeats, unknown
        fields). Hypothesis draws cost tens of microseconds each; this way one draw
        serves several requests that still differ on the wire."""
        self.oversize_share = oversize_share
        """The share of recipes over the size limit (gRPC takes about 0.1 s to refuse
        each such message on loopback, whatever its size)."""
        self.bad_tiles = uint32s_beyond(info.tile_count)
        span = info.g_max_us - info.g_min_us
        self.span = span
        self.bad_amplitudes = st.one_of(
            NONFINITE,
            st.floats(max_value=0.0, allow_nan=False, allow_infinity=False),
            st.floats(span * (1 + 1e-9) + 1e-9, 1.7e308),
        )
        vmax = info.read_voltage_max_v
        self.bad_values = {
            "conductances": outside(info.g_min_us, info.g_max_us),
            "voltages": outside(-vmax, vmax),
        }
        self.by_rpc: dict[str, Callable[[Parts], Hostile]] = {
            "Program": self.program,
            "ReadConductance": functools.partial(self.region_request, "ReadConductance"),
            "MVM": functools.partial(self.analog_pass, "MVM"),
            "TransposeMVM": functools.partial(self.analog_pass, "TransposeMVM"),
            "Perturb": self.perturb,
            "ReadWriteCounts": functools.partial(self.region_request, "ReadWriteCounts"),
            "Calibrate": self.calibrate,
            "AdvanceClock": self.advance_clock,
            "PerturbedMVM": self.perturbed_mvm,
            "RunSequence": self.sequence,
        }
        # One request in eight is bytes that do not parse; the others break their RPC's
        # fields. Hypothesis favours the first entries of a list it samples from: the RPC
        # with no fields to break and the simplest defect go last.
        rpcs = ["Program", "Perturb", "PerturbedMVM", "RunSequence", "MVM", "TransposeMVM",
                "ReadConductance", "ReadWriteCounts", "Calibrate", "AdvanceClock",
                "GetBoardInfo"]  # fmt: skip
        assert sorted(rpcs) == sorted(op.rpc for op in OPERATIONS)
        kinds = [("fields", rpc) for rpc in rpcs] * 7 + [("garbage", rpc) for rpc in rpcs]
        self.kinds = st.sampled_from(kinds)

    def batches(self, recipes: int) -> st.SearchStrategy[list[Hostile]]:
        """``recipes`` hostile recipes for any RPCs, each in ``forms`` wire forms."""

        @st.composite
        def batch(draw: st.DrawFn) -> list[Hostile]:
            # Hypothesis repeats values on purpose (0 and 2**64 - 1 are frequent seeds)
            # and copies whole recipes within a batch. The valid rest of each recipe is
            # seeded by everything drawn and built before it in the batch as well, so
            # that its copies differ on the wire; still a function of the draws alone.
            trail = hashlib.blake2b(digest_size=16)
            batch = []
            for _ in range(recipes):
                forms = self.recipe(draw, trail)
                for hostile in forms:
                    trail.update(hostile.data)
                batch += forms
            return batch

        return batch()

    def recipe(self, draw: st.DrawFn, trail: hashlib.blake2b) -> list[Hostile]:
        kind, rpc = draw(self.kinds)
        seed = draw(SEEDS)
        trail.update(repr((kind, rpc, seed)).encode())
        entropy = int.from_bytes(trail.digest())
        oversize = np.random.default_rng(seed).random() < self.oversize_share
        memo, forms = Recipe(draw), []
        for form in range(self.forms):
            memo.again()
            parts = Parts(memo, np.random.default_rng([entropy, form]))
            if oversize:
                forms.append(self.oversize(parts, rpc))
            elif kind == "garbage" or rpc not in self.by_rpc:  # GetBoardInfo has no fields
                forms.append(self.garbage(parts, rpc))
            else:
                forms.append(self.by_rpc[rpc](parts))
        return forms

    # -- fields ------------------------------------------------------------------------

    def tile(self, parts: Parts, bad: bool) -> None:
        valid = uint_field(1, parts.between(0, self.info.tile_count - 1))
        if bad:
            parts.hostile(uint_field(1, parts.draw(self.bad_tiles)), "tile", valid)
        elif parts.coin():  # else left out: tile 0
            parts.valid(valid)

    def region_within(self, parts: Parts) -> tuple[int, int, int, int]:
        """A region inside the tile (rows/cols 0 mean "to the end")."""
        info = self.info
        row, col = parts.between(0, info.rows - 1), parts.between(0, info.cols - 1)
        rows = [0, parts.between(1, info.rows - row)][parts.between(0, 1)]
        cols = [0, parts.between(1, info.cols - col)][parts.between(0, 1)]
        return row, col, rows, cols

    def region(self, parts: Parts, number: int, bad: bool) -> tuple[int, int, int, int] | None:
        """The Region field ``number``: inside the tile, left out (the whole tile), or
        leaving the tile (an offset past its edge, or a size that runs past it). Returns
        the valid region sent (None: left out, or a bad one)."""
        if not bad:
            if parts.coin():
                within = self.region_within(parts)
                parts.valid(len_field(number, region_message(*within)))
                return within
            return None
        info, draw = self.info, parts.draw
        row, col, rows, cols = self.region_within(parts)
        how = draw(REGION_DEFECTS)
        if how == "row_offset":
            row = draw(uint32s_beyond(info.rows))
        elif how == "col_offset":
            col = draw(uint32s_beyond(info.cols))
        elif how == "rows":
            rows = draw(uint32s_beyond(info.rows - row + 1))
        else:
            cols = draw(uint32s_beyond(info.cols - col + 1))
        parts.hostile(len_field(number, region_message(row, col, rows, cols)), f"region.{how}")
        return None

    def broken_tensor(
        self, parts: Parts, number: int, shape: tuple[int, int], low: float, high: float,
        what: str,
    ) -> None:  # fmt: skip
        """The tensor field ``number`` that should be float32 ``shape`` with values in
        [low, high], broken in one way (defect ``what.<how>``)."""
        rows, cols = shape
        draw = parts.draw
        how = draw(TENSOR_DEFECTS)
        defect, f32 = f"{what}.{how}", pb.DTYPE_FLOAT32
        if how == "unset":
            chunk = b""
        elif how == "dtype":
            data = bytes(rows * cols * [1, 2, 4, 8][parts.between(0, 3)])
            chunk = tensor(draw(BAD_DTYPES), list(shape), data)
        elif how == "ndim":
            dims = draw(NOT_TWO_DIMENSIONS)
            chunk = tensor(f32, dims, bytes(4 * math.prod(dims)))
        elif how == "zero-dim":
            dims = [[0, cols], [rows, 0], [0, 0]][parts.between(0, 2)]
            chunk = tensor(f32, dims, b"")
        elif how == "huge-dim":
            dims = [draw(uint32s_beyond(2**20)), [cols, 1, U32_MAX][parts.between(0, 2)]]
            if parts.coin():
                dims.reverse()
            chunk = tensor(f32, dims, bytes(4 * parts.between(0, 64)))
        elif how == "length":
            good = 4 * rows * cols
            size = draw(st.integers(0, good + 63))
            size += size >= good  # any length but the right one
            data = (parts.values(shape, low, high).tobytes() + bytes(64))[:size]
            chunk = tensor(f32, list(shape), data)
        else:  # NaN/Inf, or finite values outside [low, high]
            values = parts.values(shape, low, high)
            bad = NONFINITE if how == "nonfinite" else self.bad_values[what]
            for _ in range(parts.between(1, 3)):
                values[parts.between(0, rows - 1), parts.between(0, cols - 1)] = draw(bad)
            chunk = valid_tensor(values)
        parts.hostile(len_field(number, chunk) if chunk else b"", defect)

    # -- per RPC -----------------------------------------------------------------------

    def program(self, parts: Parts) -> Hostile:
        info, draw = self.info, parts.draw
        defects = draw(defect_sets(("conductances", "region", "offset", "tile")))
        self.tile(parts, "tile" in defects)
        row, col = parts.between(0, info.rows - 1), parts.between(0, info.cols - 1)
        shape = (parts.between(1, min(6, info.rows - row)),
                 parts.between(1, min(6, info.cols - col)))  # fmt: skip
        if "region" in defects:  # the tensor's shape runs past the tile's edge
            if parts.coin():
                shape = (info.rows - row + parts.between(1, 3), shape[1])
            else:
                shape = (shape[0], info.cols - col + parts.between(1, 3))
            parts.defects.append("conductances.shape(region)")
        if "offset" in defects and parts.coin():
            parts.hostile(uint_field(2, draw(uint32s_beyond(info.rows))), "row_offset")
            parts.valid(uint_field(3, col))
        elif "offset" in defects:
            parts.valid(uint_field(2, row))
            parts.hostile(uint_field(3, draw(uint32s_beyond(info.cols))), "col_offset")
        else:
            parts.valid(uint_field(2, row) + uint_field(3, col))
        low, high = info.g_min_us, info.g_max_us
        if "conductances" in defects:
            self.broken_tensor(parts, 4, shape, low, high, "conductances")
        else:
            parts.valid(len_field(4, valid_tensor(parts.values(shape, low, high))))
        return parts.build("Program")

    def analog_pass(self, rpc: str, parts: Parts) -> Hostile:
        """MVM or TransposeMVM."""
        info, draw = self.info, parts.draw
        defects = draw(defect_sets(("voltages", "width", "batch", "tile", "region")))
        self.tile(parts, "tile" in defects)
        # Inputs as wide as the region's driven side (the tile's without a region).
        width = info.rows if rpc == "MVM" else info.cols
        within = self.region(parts, 3, "region" in defects)
        if within is not None:
            row, col, rows, cols = within
            width = (rows or info.rows - row) if rpc == "MVM" else (cols or info.cols - col)
        batch, vmax = parts.between(1, 4), info.read_voltage_max_v
        if "batch" in defects:  # more vectors than [limits] max_batch
            batch = draw(uint32s_beyond(self.limits.max_batch + 1))
            size = 4 * (batch % 2**32) * width  # as the uint32 field holds it
            # Whole when it fits the size limit (zeros: valid voltages), else the shape
            # alone: the limit is judged from the shape before the data is read.
            data = bytes(size) if size + 64 <= self.limits.request_bytes else bytes(4 * width)
            chunk = tensor(pb.DTYPE_FLOAT32, [batch, width], data)
            parts.hostile(len_field(2, chunk), "voltages.shape(max_batch)")
        elif "voltages" in defects:
            self.broken_tensor(parts, 2, (batch, width), -vmax, vmax, "voltages")
        elif "width" in defects:
            other = draw(st.integers(1, width + 7))
            other += other >= width  # any width but the tile's
            values = parts.values((batch, other), -vmax, vmax)
            parts.hostile(len_field(2, valid_tensor(values)), "voltages.shape(width)")
        else:
            parts.valid(len_field(2, valid_tensor(parts.values((batch, width), -vmax, vmax))))
        return parts.build(rpc)

    def region_request(self, rpc: str, parts: Parts) -> Hostile:
        """ReadConductance or ReadWriteCounts."""
        draw = parts.draw
        defects = draw(defect_sets(("region", "tile")))
        self.tile(parts, "tile" in defects)
        self.region(parts, 2, "region" in defects)
        return parts.build(rpc)

    def perturb(self, parts: Parts) -> Hostile:
        draw = parts.draw
        defects = draw(defect_sets(("amplitude_us", "sign", "mode", "region", "tile")))
        self.tile(parts, "tile" in defects)
        # seed, amplitude and sign count only for APPLY: a defect in them needs it.
        applies = bool(defects & {"sign", "amplitude_us"}) or parts.coin()
        mode = uint_field(2, pb.PERTURB_MODE_APPLY if applies else pb.PERTURB_MODE_RESTORE)
        if "mode" in defects:
            parts.hostile(uint_field(2, draw(BAD_MODES)), "mode", mode)
        else:
            parts.valid(mode)
        seed = int(parts.rng.integers(0, U64, dtype=np.uint64))
        parts.valid(uint_field(3, seed))  # every seed is valid
        sign = sint_field(5, [1, -1][parts.between(0, 1)])
        if "sign" in defects:
            parts.hostile(sint_field(5, draw(BAD_SIGNS)), "sign", sign)
        else:
            parts.valid(sign)
        amplitude = double_field(4, float(parts.rng.uniform(1e-3, self.span)))
        if "amplitude_us" in defects:
            bad = double_field(4, draw(self.bad_amplitudes))
            parts.hostile(bad, "amplitude_us", amplitude)
        else:
            parts.valid(amplitude)
        self.region(parts, 6, "region" in defects)
        return parts.build("Perturb")

    def point(self, parts: Parts, bad: bool) -> bytes:
        """One PerturbationPoint message: valid, or with a bad sign or amplitude."""
        seed = uint_field(1, int(parts.rng.integers(0, U64, dtype=np.uint64)))
        amplitude = double_field(2, float(parts.rng.uniform(1e-3, self.span)))
        sign = sint_field(3, [1, -1][parts.between(0, 1)])
        if bad and parts.coin():
            sign = sint_field(3, parts.draw(BAD_SIGNS))
        elif bad:
            amplitude = double_field(2, parts.draw(self.bad_amplitudes))
        return seed + amplitude + sign

    def perturbed_mvm(self, parts: Parts) -> Hostile:
        info, draw = self.info, parts.draw
        defects = draw(defect_sets(("voltages", "width", "points", "point", "region", "tile")))
        self.tile(parts, "tile" in defects)
        if "region" in defects:  # refused before the voltages are looked at: any width
            self.region(parts, 4, True)
            width = parts.between(1, 8)
        else:
            row, col, rows, cols = self.region_within(parts)
            parts.valid(len_field(4, region_message(row, col, rows, cols)))
            width = rows or info.rows - row
        count = parts.between(1, 3)
        if "points" in defects:  # none, or more than the 64 allowed
            count = [0, parts.between(65, 70)][parts.between(0, 1)]
            parts.defects.append("points")
        broken = parts.between(0, count - 1) if "point" in defects and count else -1
        for k in range(count):
            chunk = len_field(3, self.point(parts, k == broken))
            if k == broken:
                parts.hostile(chunk, "point")
            else:
                parts.valid(chunk)
        batch, vmax = parts.between(1, 4), info.read_voltage_max_v
        if "voltages" in defects:
            self.broken_tensor(parts, 2, (batch, width), -vmax, vmax, "voltages")
        elif "width" in defects:
            other = draw(st.integers(1, width + 7))
            other += other >= width  # any width but the region's rows
            values = parts.values((batch, other), -vmax, vmax)
            parts.hostile(len_field(2, valid_tensor(values)), "voltages.shape(width)")
        else:
            parts.valid(len_field(2, valid_tensor(parts.values((batch, width), -vmax, vmax))))
        return parts.build("PerturbedMVM")

    def sequence(self, parts: Parts) -> Hostile:
        """A RunSequence: too few or too many steps, a step with no operation, or one
        hostile step (any tile operation's, built by its own strategy) among valid ones."""
        draw = parts.draw
        how = draw(st.sampled_from(["step", "step", "count", "empty"]))
        read = len_field(1, len_field(2, uint_field(1, parts.between(0, self.info.tile_count - 1))))
        for _ in range(parts.between(0, 2) if how != "count" else 0):
            parts.valid(read)
        if how == "count":  # none, or more than the 16 allowed
            parts.hostile(read * [0, parts.between(17, 20)][parts.between(0, 1)], "steps")
        elif how == "empty":
            parts.hostile(len_field(1, b""), "steps[k](empty)")
        else:
            rpc = draw(st.sampled_from(sorted(STEP_NUMBERS)))
            inner = self.by_rpc[rpc](Parts(parts.draw, parts.rng))
            step = len_field(STEP_NUMBERS[rpc], inner.data)
            parts.hostile(len_field(1, step), f"steps[k].{rpc}({inner.defect})")
        return parts.build("RunSequence")  # steps shuffled: valid ones before or after

    def calibrate(self, parts: Parts) -> Hostile:
        self.tile(parts, True)
        return parts.build("Calibrate")

    def advance_clock(self, parts: Parts) -> Hostile:
        draw = parts.draw
        valid = double_field(1, float(parts.rng.uniform(0.0, 3600.0)))
        parts.hostile(double_field(1, draw(BAD_SECONDS)), "seconds", valid)
        return parts.build("AdvanceClock")

    # -- no request at all ---------------------------------------------------------------

    def garbage(self, parts: Parts, rpc: str) -> Hostile:
        """Bytes that do not parse as the request: random bytes (wrapped in a field
        longer than what follows when they happen to parse), a length-delimited field
        longer than what follows, or a broken field; now and then after well-formed
        unknown fields."""
        draw = parts.draw
        body, length = draw(GARBAGE)
        if length:  # a field of a known number, with a length past the end
            body = key(parts.between(1, 6), LEN) + length + body
        head = parts.unknown_fields() if parts.coin() else b""
        data = head + body
        if parses(rpc, data):  # random bytes that happen to be a message
            # A field that claims one byte more than follows never parses. (A zero key
            # byte in front does not do: upb takes some messages that start with one.)
            data = key(1, LEN) + varint(len(data) + 1) + data
        return Hostile(rpc, data, "garbage")

    def oversize(self, parts: Parts, rpc: str) -> Hostile:
        """A message over the principal's limit, or over the server's too; an MVM one is
        a well-formed batch of zeros."""
        low, high = self.limits.request_bytes, self.limits.message_bytes + 64 * 1024
        size = parts.draw(st.integers(low + 1, high))
        if rpc in ("MVM", "TransposeMVM"):
            width = self.info.rows if rpc == "MVM" else self.info.cols
            batch = size // (4 * width) + 1
            data = len_field(2, tensor(pb.DTYPE_FLOAT32, [batch, width], bytes(4 * batch * width)))
        else:
            data = len_field(20000 + rpc_number(rpc), bytes(size))
        assert len(data) > self.limits.request_bytes
        return Hostile(rpc, data, "oversize")


def rpc_number(rpc: str) -> int:
    return [op.rpc for op in OPERATIONS].index(rpc)
