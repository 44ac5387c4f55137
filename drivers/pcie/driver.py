"""``pcie://`` and ``pcie+file://`` transports: a SIDRA board behind BAR0.

URLs (options in the query string)::

    pcie://0000:01:00.0              BAR0 of a PCI device (sysfs resource0)
    pcie+file:///dev/shm/sidra.bar       a file of BAR_SIZE bytes (the virtual PCIe board)
    pcie+file:///dev/shm/sidra.bar?timeout=0.2

Option: ``timeout`` (s, default 1.0): the margin added to each command's modeled
time (its wire entry's ``device_seconds``, at the reference times or the longer ones
the board declares in PROGRAM_CELL_NS .. COMMAND_US) before a missing completion is a
DeadlineExceeded, and the wait for a ring-reset acknowledgement.

Each command's payload is exactly the wire payload of its operation
(sidra.drivers.wire.operations, docs/wire-protocol.md §6), its opcode the wire
message id: Program's targets follow its head in the input window, named by
``StagedData(0, crc32)`` (stage 0: the command's own input window). Up to
QUEUE_DEPTH commands are in flight (:meth:`PcieDriver.run_many`, and an MVM
batch larger than a window, split into chunks). The memory ordering rules are in
:mod:`sidra.drivers.pcie.queues`.

A changed BOOT_COUNT is a :class:`BoardReset` (the rings are restarted, the
next call runs); a removed device (file gone, registers reading 0xFFFFFFFF) a
:class:`BoardUnavailable` with the link down until :meth:`probe_link` finds it
back; a completion that never comes a :class:`DeadlineExceeded`.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import SplitResult

import numpy as np
import numpy.typing as npt

from sidra.drivers import validation as check
from sidra.drivers.base import BoardDriver, boot_instance_id
from sidra.drivers.batches import cut, cut_points, joined
from sidra.drivers.errors import (
    BoardFault,
    BoardReset,
    BoardUnavailable,
    InvalidArgument,
)
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import FileBar, RegisterIO, SysfsBar
from sidra.drivers.pcie.host_memory import MIN_RESULT_BYTES, Span
from sidra.drivers.pcie.queues import (
    Command,
    Completion,
    DeviceSilent,
    Queues,
    declared_times,
    identify,
)
from sidra.drivers.requests import (
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    Request,
    TransposeMVMRequest,
)
from sidra.drivers.serial.driver import _float_option
from sidra.drivers.types import BoardDescription, BoardInfo, Cost, MVMResult, Region
from sidra.drivers.url import as_typed, query_options
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.device_times import REFERENCE_TIMES, DeviceTimes
from sidra.drivers.wire.messages import Feature, Msg, Status
from sidra.drivers.wire.operations import (
    StagedData,
    entry_of,
    padded_to_tile,
    pass_head,
    region_outputs,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TIMEOUT_S", "PcieDriver"]

DEFAULT_TIMEOUT_S = 1.0
"""Margin on each command's modeled time before it is overdue, s."""
_BDF = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


class PcieDriver(BoardDriver):
    """A board whose BAR0 ``opener()`` maps (see the module docstring)."""

    def __init__(self, opener: Callable[[], RegisterIO], timeout_s: float = DEFAULT_TIMEOUT_S):
        self._opener = opener
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bool], None]] = []
        self._up = False
        self.link_down_reason: str | None = None
        """Why the link last went down (the error its call got); None while it is up."""
        self._probe_told = ""
        self._closed = False
        self._reset_notice: str | None = None
        self._last_name = "PCIe board"
        self._known_boot: int | None = None
        self._bar: RegisterIO | None = None
        self._queues: Queues | None = None
        self.features = Feature(0)
        """FEATURES as the board said when last attached."""
        self.device_times: DeviceTimes = REFERENCE_TIMES
        """How long this host allows the board over each command: the reference times,
        raised to what the board declares (PROGRAM_CELL_NS ..., read at every attach)."""
        self._pass_paths: dict[type[Any], _PassPath] = {}
        info, _ = self._attach()
        profile: dict[str, object] = {}
        if self.features & Feature.PROFILE:
            done = self._run([Command(Msg.GET_PROFILE, [])])[0]
            profile = json.loads(self._checked(Msg.GET_PROFILE, done).data.tobytes())
        self._info = replace(info, profile=profile)
        self._pass_paths = _pass_paths(self._info, self.device_times)

    @classmethod
    def check_url(cls, url: SplitResult) -> None:
        """Refuses (InvalidArgument) a URL :meth:`from_url` would refuse, mapping nothing
        (``sidra serve --check`` asks while a running service holds the board)."""
        cls._parsed(url)

    @classmethod
    def from_url(cls, url: SplitResult) -> PcieDriver:
        where, timeout_s = cls._parsed(url)
        if url.scheme == "pcie":
            return cls(lambda: SysfsBar(where, host=True), timeout_s)
        return cls(lambda: FileBar(where, host=True), timeout_s)

    @staticmethod
    def _parsed(url: SplitResult) -> tuple[str, float]:
        """The URL's PCI address (pcie://) or file (pcie+file://), and its timeout, s."""
        options = query_options(url, {"timeout"})
        timeout_s = _float_option(options, "timeout", DEFAULT_TIMEOUT_S)
        if url.scheme == "pcie":
            bdf = url.netloc
            if not _BDF.match(bdf) or url.path:
                file = " (a BAR file: pcie+file:///path)" if url.path and not bdf else ""
                raise InvalidArgument(
                    "url", as_typed(url), f"pcie://DDDD:BB:DD.F, e.g. pcie://0000:01:00.0{file}"
                )
            return bdf.lower(), timeout_s  # sysfs names devices in lower-case hex
        if url.netloc or not url.path:  # pcie+file://dev/shm/b: "dev" would be a host
            raise InvalidArgument(
                "url", as_typed(url),
                "pcie+file:// and an absolute path (three slashes), e.g. "
                "pcie+file:///dev/shm/sidra.bar",
            )  # fmt: skip
        return url.path, timeout_s

    @property
    def info(self) -> BoardInfo:
        return self._info

    @property
    def name(self) -> str:
        """The BAR's URL; while it is not mapped (the link down), the one last mapped."""
        return self._bar.name if self._bar is not None else self._last_name

    # -- link ------------------------------------------------------------------------------

    @property
    def link_up(self) -> bool:
        return self._up

    @property
    def closed(self) -> bool:
        return self._closed

    def add_link_listener(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def probe_link(self) -> bool:
        """Re-maps a lost BAR or pings an idle board through the rings (GET_STATS);
        never waits for a call in progress."""
        if self._closed or not self._lock.acquire(blocking=False):
            return self._up and not self._closed
        try:
            if self._queues is None:
                self._attach()
            else:
                self._run([Command(Msg.GET_STATS, [])])
            self._probe_told = ""
        except BoardReset as exc:
            self._reset_notice = str(exc)  # the next call reports it
        except BoardUnavailable:
            pass  # the link is down: its watcher says so
        except Exception as exc:  # noqa: BLE001 - a probe only reports; the next call raises
            # A hung or failed health check left no trace while later calls worked: told
            # once per distinct error (a probe runs every half second while idle).
            told = f"{type(exc).__name__}: {exc}"
            if told != self._probe_told:
                log.warning("board health check (GET_STATS) failed: %s", told)
                self._probe_told = told
        finally:
            self._lock.release()
        return self._up

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._detach()

    def _set_up(self, up: bool, reason: str | None = None) -> None:
        """``up``; going down, ``reason`` is why (the error its call got), which
        :attr:`link_down_reason` keeps for the listeners (a server's log line)."""
        if up != self._up:
            self.link_down_reason = None if up else reason
            self._up = up
            for listener in self._listeners:
                listener(up)

    @property
    def queue_depth(self) -> int:
        """Entries per ring of the mapped board (0 while the link is down)."""
        return self._queues.depth if self._queues is not None else 0

    @property
    def host_memory_bytes(self) -> int:
        """Size of the host-memory region the board writes large results into (0: the
        results come through the output windows), bytes."""
        queues = self._queues
        return queues.host.size if queues is not None and queues.host is not None else 0

    @property
    def boot_count(self) -> int:
        """The board's BOOT_COUNT when this driver last attached (0: never)."""
        return self._known_boot or 0

    @property
    def instance_id(self) -> str:
        """``<serial>/boot-<BOOT_COUNT>``: changes as soon as a reset is detected (a
        refused command of the old boot, or a new count found when re-attaching)."""
        return boot_instance_id(self._info.serial_number, self.boot_count)

    def _attach(self) -> tuple[BoardInfo, Feature]:
        """Maps BAR0, identifies the board and restarts the rings."""
        self._detach()
        try:
            bar = self._opener()
        except BoardUnavailable as exc:
            self._set_up(False, str(exc))
            raise
        try:
            info, boot, features = identify(bar)
            known = self._known_boot
            host_results = bool(features & Feature.HOST_RESULTS) and _WIRE_F32.isnative
            self._queues = Queues(bar, boot, self.timeout_s, host_results)
        except BaseException as exc:
            bar.close()
            self._set_up(False, f"{type(exc).__name__}: {exc}")
            raise
        self._bar = bar
        self._last_name = bar.name
        if known is not None and boot != known:
            self._reset_notice = (
                f"board at {bar.name} restarted while the link was down (boot count {known} "
                f"-> {boot}); its state is lost"
            )
        self._known_boot = boot
        self.features = features  # read again on every attach: firmware may have changed
        times = REFERENCE_TIMES.declared(declared_times(bar))
        if times != self.device_times:
            self.device_times = times
            if self._pass_paths:  # the board came back with other firmware
                self._pass_paths = _pass_paths(self._info, times)
        self._set_up(True)
        return info, features

    def _detach(self) -> None:
        self._queues = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _run(self, commands: Sequence[Command]) -> list[Completion]:
        """Runs commands on the rings; turns what went wrong into the link's state."""
        queues = self._ready_queues()
        try:
            done = queues.run(commands)
        except (BoardReset, BoardUnavailable, DeviceSilent) as exc:
            self._failed(queues, exc)
            raise
        if any(c.status == Status.STALE_EPOCH for c in done):
            self._stale(queues)
        if not self._up:
            self._set_up(True)
        return done

    def _ready_queues(self) -> Queues:
        """The rings to run a command on: re-attaches a lost link and reports a reset
        detected meanwhile."""
        if self._closed:
            raise BoardUnavailable(f"the driver of {self.name} is closed")
        if self._queues is None:
            try:
                self._attach()
            except DeviceSilent as exc:  # mapped, but nobody services the rings
                raise BoardUnavailable(f"{self.name} does not answer: {exc}") from exc
        if self._reset_notice is not None:
            notice, self._reset_notice = self._reset_notice, None
            raise BoardReset(notice)
        assert self._queues is not None
        return self._queues

    def _failed(self, queues: Queues, exc: Exception) -> None:
        """The link's state after running on ``queues`` raised ``exc``."""
        if isinstance(exc, BoardReset):
            self._restart(queues)
        else:  # removed, or a hung command whose device then ignored a ring reset
            self._detach()
            self._set_up(False, f"{type(exc).__name__}: {exc}")

    def _stale(self, queues: Queues) -> None:
        """The board refused a command of the old boot: adopt the new one, raise."""
        old = queues.boot_count
        self._restart(queues)
        raise BoardReset(
            f"board at {self.name} restarted (boot count {old} -> {queues.boot_count}; "
            f"it refused a command of the old boot); its state is lost"
        )

    def _restart(self, queues: Queues) -> None:
        """After a device reset: adopt the new boot count and restart the rings."""
        assert self._bar is not None
        self._known_boot = queues.boot_count = self._bar.read32(r.OFFSET["BOOT_COUNT"])
        try:
            queues.reset_rings()
        except Exception as exc:
            self._detach()
            self._set_up(False, f"{type(exc).__name__}: {exc}")
            raise

    @staticmethod
    def _checked(msg: int, done: Completion) -> Completion:
        if done.status != Status.OK:
            raise m.error_exception(_name(msg), done.status, done.head)
        return done

    # -- board operations ------------------------------------------------------------------

    def _handle(self, request: Request) -> Any:
        with self._lock:
            if isinstance(request, GetBoardInfoRequest):
                return self._keeping_reset_notice(request)
            return self._execute([request])[0]

    def take_reset_notice(self) -> str | None:
        with self._lock:
            notice, self._reset_notice = self._reset_notice, None
            return notice

    def _keeping_reset_notice(self, request: Request) -> Any:
        """``request``, whose answer depends on no cell (GET_STATS, the board's totals),
        without spending a reset notice on it: a reset found before or on the way is kept
        for the next command that depends on the array. A viewer's ``sidra status`` must
        not take the notice from whoever's tiles were lost."""
        kept, self._reset_notice = self._reset_notice, None
        try:
            try:
                return self._execute([request])[0]
            except BoardReset as exc:  # found on the way: the rings run the new boot now
                kept = kept or str(exc)
                self._reset_notice = None
                return self._execute([request])[0]
        finally:
            if kept is not None and self._reset_notice is None:
                self._reset_notice = kept

    # -- the pass path: one MVM or TransposeMVM, nearly every call of a training loop -------

    def run(self, request: Request) -> Any:
        path = self._pass_paths.get(type(request))
        if path is not None and not request.uses_codes:  # type: ignore[union-attr]
            pass_request: MVMRequest | TransposeMVMRequest = request  # type: ignore[assignment]
            return self._pass(path, pass_request.tile, pass_request.voltages, pass_request.region)
        return super().run(request)

    def run_step(self, step: Request) -> Any:
        # A pass takes the pass path as in run (whose one voltage check is all it makes).
        if type(step) in self._pass_paths and not step.uses_codes:  # type: ignore[union-attr]
            return self.run(step)
        return self._run_checked(step)

    def mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike | None = None,
        region: Region | None = None,
        *,
        input_codes: npt.ArrayLike | None = None,
        output_codes: bool = False,
    ) -> MVMResult:
        if input_codes is not None or output_codes:  # converter codes: run's path
            request = MVMRequest(tile, voltages, region, input_codes, output_codes)
            result: MVMResult = self.run(request)
            return result
        return self._pass(self._pass_paths[MVMRequest], tile, voltages, region)

    def transpose_mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike | None = None,
        region: Region | None = None,
        *,
        input_codes: npt.ArrayLike | None = None,
        output_codes: bool = False,
    ) -> MVMResult:
        if input_codes is not None or output_codes:  # converter codes: run's path
            request = TransposeMVMRequest(tile, voltages, region, input_codes, output_codes)
            result: MVMResult = self.run(request)
            return result
        return self._pass(self._pass_paths[TransposeMVMRequest], tile, voltages, region)

    def _pass(
        self, path: _PassPath, tile: Any, voltages: Any, region: Region | None = None
    ) -> MVMResult:
        """A pass as :meth:`run` would run it (the same checks, the same wire payload,
        the same errors), straight onto the rings: no request object, no generic
        encoding, one command. A batch larger than a slot window, and a region on a
        board that takes none, take :meth:`run`'s path (chunks in flight together; the
        region padded to the whole tile)."""
        info = self._info
        if type(tile) is not int or not 0 <= tile < info.tile_count:
            check.check_tile(info, tile)  # raises, unless a numpy integer in range
        if region is not None:
            region = check.check_region(info, region)
            if region.shape == (info.rows, info.cols):
                region = None  # the whole tile: the plain pass (as ``checked`` makes it)
            else:
                path = path.over(region, self.features)
        if (
            type(voltages) is np.ndarray
            and voltages.dtype == _NATIVE_F32
            and voltages.ndim == 2
            and voltages.shape[1] == path.inputs
            and voltages.size >= BOARD_CHECKS_FROM
            and len(voltages) <= path.per_window
        ):
            # A large batch's magnitudes are checked where they are used, by the board,
            # which refuses a bad one with the same error before anything runs: checked
            # here as well, a batch-1024 MVM would read its MiB twice on the way.
            v = voltages
        else:
            v = check.pass_voltages(info, voltages, path.inputs, path.driven)
        batch = len(v)
        if batch > path.per_window or path.padded:
            return BoardDriver.run(self, path.request(tile, v, region))  # type: ignore[no-any-return]
        if region is None:
            head = m.MVM_REQ.pack(tile, 0, 0, batch, 0, 0, 0)
        else:
            head = pass_head(tile, region, batch)
        data = np.ascontiguousarray(v, _WIRE_F32).data.cast("B")
        result_bytes = 4 * batch * path.outputs
        with self._lock:
            queues = self._queues
            if queues is None or self._closed or self._reset_notice is not None:
                queues = self._ready_queues()
            try:
                status, head_len, response, lent = queues.run_one(
                    path.opcode,
                    head,
                    data,
                    path.device_s_fixed + path.device_s_per_vector * batch,
                    result_bytes,
                )
            except (BoardReset, BoardUnavailable, DeviceSilent) as exc:
                self._failed(queues, exc)
                raise
            if status != Status.OK:
                if status == Status.STALE_EPOCH:
                    self._stale(queues)
                raise m.error_exception(path.name, status, response[:head_len].tobytes())
            if not self._up:
                self._set_up(True)
        answered = len(response) - head_len if lent is None else lent.result_len
        if head_len != _PASS_HEAD.size or answered != result_bytes:
            if lent is not None:
                lent.give_back()
            raise BoardFault(
                f"{path.name}: the board answered a {head_len}-byte head and "
                f"{answered} result bytes; a pass of {batch} vectors is "
                f"{_PASS_HEAD.size} and {result_bytes}"
            )
        saturated, _, time_ns, energy_nj = _PASS_HEAD.unpack_from(response.data)
        if lent is not None:  # the board wrote the currents into host memory: no copy
            currents = lent.array((batch, path.outputs), _WIRE_F32)
        else:
            currents = np.ndarray((batch, path.outputs), _WIRE_F32, response, head_len)
        if not _WIRE_F32.isnative:  # a big-endian host: the caller gets native floats
            currents = currents.astype(np.float32)
        return MVMResult(currents, saturated, Cost(time_ns, energy_nj))

    def run_many(self, requests: Sequence[Request]) -> list[Any]:
        """Validates every request, then runs them with up to QUEUE_DEPTH in flight;
        results in request order. The first failed request's error is raised after
        all have completed."""
        checked = [request.checked(self.info) for request in requests]
        with self._lock:
            return self._execute(checked)

    def _execute(self, requests: Sequence[Request]) -> list[Any]:
        sent = [self._as_sent(request) for request in requests]
        plans = [_split(request, self.info) for request in sent]
        commands = [[self._command(piece) for piece in pieces] for pieces, _ in plans]
        queues = self._ready_queues()  # (spans are lent from the region of these rings)
        spans = [_span(queues, group) for group in commands]
        try:
            done = self._run([command for group in commands for command in group])
            results, at = [], 0
            for k, (request, board_request, (pieces, join)) in enumerate(
                zip(requests, sent, plans, strict=True)
            ):
                parts = [self._decode(piece, done[at + i]) for i, piece in enumerate(pieces)]
                at += len(pieces)
                span = spans[k]
                if span is not None:
                    result, spans[k] = _joined_in(span, parts), None  # the caller's array's
                else:
                    result = parts[0] if len(parts) == 1 else join(parts)
                if board_request is not request:  # padded to the whole tile: the region's
                    assert isinstance(request, MVMRequest | TransposeMVMRequest)
                    result = region_outputs(result, request)
                results.append(result)
        except BaseException:
            for span in spans:  # the device wrote nothing a caller holds
                if span is not None:
                    span.give_back()
            raise
        return results

    def _as_sent(self, request: Request) -> Request:
        """``request`` as the board takes it: a region pass padded to the whole tile when
        the board takes no region (FEATURES bit 2)."""
        if not isinstance(request, MVMRequest | TransposeMVMRequest) or request.region is None:
            return request
        if self.features & Feature.REGION_PASS:
            return request
        return padded_to_tile(request, self.info)

    def _command(self, request: Request) -> Command:
        entry = entry_of(request)
        times = self.device_times  # COMMAND_US once a command, on top (as a serial link)
        device_s = entry.device_seconds(request, self.info, times) + times.command_s
        if not entry.always_staged:
            parts = entry.request_parts(request)
            return Command(
                entry.msg(request), parts, device_s, result_bytes=_pass_bytes(request, self.info)
            )
        data = entry.data(request)  # Program: the targets follow the head in the window
        head = entry.pack_request(request, StagedData(0, zlib.crc32(data)))
        return Command(entry.msg(request), [head, data], device_s, head_len=len(head))

    def _decode(self, request: Request, done: Completion) -> Any:
        entry = entry_of(request)
        self._checked(entry.msg(request), done)
        result = entry.decode_result(
            request, done.head, None if entry.result_at is None else done.data.data, self.info
        )
        if isinstance(request, GetBoardInfoRequest):
            return BoardDescription(self.info, result)
        return result


_WIRE_F32 = np.dtype("<f4")
"""Voltages and currents on the wire: little-endian float32."""
_NATIVE_F32 = np.dtype(np.float32)
BOARD_CHECKS_FROM = 16384
"""Voltages in a pass (batch × inputs) from which the board alone checks their range: a
1-vector MVM is checked here too (cheap, and refused without a round trip); a 64 KiB
batch and up costs more to read twice than a refusal from the board costs once."""
_PASS_HEAD = struct.Struct(m.MVM_RESP.format + m.COST.format.lstrip("<"))
"""A pass's response head: MVM_RESP then COST (docs/wire-protocol.md §6)."""


@dataclass(frozen=True, slots=True)
class _PassPath:
    """What a pass of one kind needs per call, worked out once per board (and per call
    for a region: :meth:`over`)."""

    request: type[MVMRequest] | type[TransposeMVMRequest]
    name: str
    opcode: int
    inputs: int
    outputs: int
    driven: str
    per_window: int
    """Most vectors one command carries (more: chunks, the generic path)."""
    device_s_per_vector: float
    """The wire entry's upper bound of the board's time per vector, s."""
    device_s_fixed: float
    """What the board may take over any command besides its vectors (COMMAND_US), s:
    once a command, not once a vector."""
    padded: bool = False
    """A region pass on a board that takes none: padded to the whole tile (generic path)."""

    def over(self, region: Region, features: Feature) -> _PassPath:
        """This pass over ``region`` (resolved, smaller than the tile) on a board with
        ``features``."""
        inputs = self.request.region_inputs(region)
        outputs = self.request.region_outputs(region)
        return replace(
            self,
            inputs=inputs,
            outputs=outputs,
            driven=self.request.driven_in_region,
            per_window=_vectors_per_window(inputs, outputs),
            padded=not features & Feature.REGION_PASS,
        )


def _pass_paths(info: BoardInfo, times: DeviceTimes) -> dict[type[Any], _PassPath]:
    paths = {}
    for request, inputs, outputs in (
        (MVMRequest, info.rows, info.cols),
        (TransposeMVMRequest, info.cols, info.rows),
    ):
        one = request(0, np.zeros((1, inputs), np.float32))
        entry = entry_of(one)
        msg = entry.msg(one)
        paths[request] = _PassPath(
            request, msg.name, int(msg), inputs, outputs, request.driven,
            _vectors_per_window(inputs, outputs),
            entry.device_seconds(one, info, times), times.command_s,
        )  # fmt: skip
    return paths


def _pass_bytes(request: Request, info: BoardInfo) -> int:
    """The result array's size of a plain pass (float32 currents only), which may come
    back in host memory; 0 for anything else."""
    if not isinstance(request, MVMRequest | TransposeMVMRequest) or request.uses_codes:
        return 0
    if request.voltages is None:  # (a checked pass has them)
        return 0
    outputs: int = entry_of(request).outputs(info, request.region)  # type: ignore[attr-defined]
    return 4 * len(request.voltages) * outputs


def _vectors_per_window(inputs: int, outputs: int) -> int:
    """Vectors of ``inputs`` inputs and ``outputs`` outputs a slot window carries (and the
    answer's too)."""
    widest = max(inputs, outputs)
    return max(1, (r.SLOT_WINDOW_BYTES - 64) // (4 * widest))


def _span(queues: Queues, commands: list[Command]) -> Span | None:
    """One span of host memory for a pass cut into several commands, each lent its part
    of it (their results then lie end to end: the caller's one array, no join to copy);
    None when there is one command, a result too small to lend, or no run of chunks."""
    host = queues.host
    if len(commands) < 2 or host is None:
        return None
    if any(command.result_bytes < MIN_RESULT_BYTES for command in commands):
        return None
    span = host.lend_span(sum(command.result_bytes for command in commands))
    if span is not None:
        offset = 0
        for command in commands:
            command.lent = span.part(offset, command.result_bytes)
            offset += command.result_bytes
    return span


def _joined_in(span: Span, parts: list[MVMResult]) -> MVMResult:
    """The parts' results as one result over ``span``, where each part's currents lie
    already (one that came back in its window instead is copied into its place)."""
    first = parts[0]
    outputs = first.currents.shape[1]
    whole = span.array((sum(len(p.currents) for p in parts), outputs), _WIRE_F32)
    at = 0
    for part in parts:
        place = whole[at : at + len(part.currents)]
        if part.currents.ctypes.data != place.ctypes.data:
            place[...] = part.currents
        at += len(part.currents)
    return MVMResult(
        whole,
        sum(p.saturated_outputs for p in parts),
        sum((p.cost for p in parts), Cost()),
        dac_step_v=first.dac_step_v,
        adc_step_ua=first.adc_step_ua,
    )


def _split(request: Request, info: BoardInfo) -> tuple[list[Request], Callable[..., Any]]:
    """A request too large for one slot window, as pieces that each fit, and how their
    results join: an MVM batch by its vectors, a PerturbedMVM by its points first
    (sidra.drivers.batches). Anything else is one piece."""
    if isinstance(request, PerturbedMVMRequest):
        region = request.region or Region().resolve(info.rows, info.cols)
        batch, inputs = request.voltages.shape
        room = r.SLOT_WINDOW_BYTES - 64  # the answer's head and a request's points
        most_vectors = max(1, (room - 24 * len(request.points)) // (4 * inputs))
        pieces = cut_points(request, room // (4 * region.cols), most_vectors)
        return list(pieces.parts), pieces.joined
    if not isinstance(request, MVMRequest | TransposeMVMRequest):
        return [request], joined
    inputs = request.voltages.shape[1]
    region = request.region or Region().resolve(info.rows, info.cols)
    per_window = _vectors_per_window(inputs, request.region_outputs(region))
    return list(cut(request, per_window)), joined


def _name(msg: int) -> str:
    try:
        return Msg(msg).name
    except ValueError:
        return f"opcode 0x{msg:02x}"
