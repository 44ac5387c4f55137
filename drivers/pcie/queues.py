"""The host end of BAR0's rings: identify the board, submit commands, reap completions.

Ring indices (SQ_TAIL, SQ_HEAD, CQ_HEAD and the device's completion tail) are
free-running u32 counters; the entry they name is ``counter mod depth``. A
completion is new when its phase bit equals ``1 ^ (pass & 1)``, pass being
``counter // depth``: the device clears the completion ring on a ring reset, so
the first pass looks for phase 1 (NVMe 2.0 §4.6).

Memory ordering the host relies on (docs/pcie.md, "Memory ordering"):

1. Host: payload into the slot's input window, then the submission entry, then
   SQ_TAIL (the doorbell) last, then a STATUS read. Stores from one CPU reach a
   PCIe device in program order (posted writes are never reordered with each
   other), and the read does not complete before the posted writes ahead of
   it: after it, the device has the doorbell.
2. Device: response into the slot's output window (a result it was given room
   for in host memory, there), then the completion entry, and the entry's phase
   word last, as one aligned 32-bit store. A host that sees the new phase
   therefore sees the whole entry, the window and the host memory (a device's
   writes to host-visible memory are ordered too: PCIe posted writes).
3. The host reads the phase word first, then the rest of the entry, then the
   window; it writes CQ_HEAD only after it has copied the response out, and
   reuses a slot only after its completion: the device never writes a window
   the host is still reading. A chunk of host memory is named in a submission
   only while nobody holds it (sidra.drivers.pcie.host_memory).
4. Each register is one aligned 32- or 64-bit access (bar.py), so no store is
   ever split, torn, or merged with a neighbour's.

For the file-backed virtual board both ends are CPU processes sharing a
MAP_SHARED page: x86-64 keeps stores in order (TSO) and so do these rules;
ARM64 would need barriers Python cannot emit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import (
    BoardFault,
    BoardReset,
    BoardUnavailable,
    DeadlineExceeded,
    FailedPrecondition,
)
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import ALL_ONES, RegisterIO, f64_of
from sidra.drivers.pcie.host_memory import MIN_RESULT_BYTES, HostMemory, Lent
from sidra.drivers.pcie.waiting import HYBRID_MARGIN_S, SPIN_S, Backoff, ServiceTimes, SpinGate
from sidra.drivers.types import BoardInfo, BoardTiming, Buffer
from sidra.drivers.wire.device_times import NONE_DECLARED, CommandTimes
from sidra.drivers.wire.messages import Feature

__all__ = [
    "Command",
    "Completion",
    "DeviceSilent",
    "IncompatibleBoard",
    "Queues",
    "declared_times",
    "identify",
]

CHECK_EVERY_S = 1e-3
"""How often a waiting host checks BOOT_COUNT and that the device is still there."""
_SPIN_BURST = range(32)
"""Reads of the phase word in a row while spinning, between looks at the clock (~5 µs)."""


# Offsets and bits the rings use on every command: plain ints, looked up once (an IntFlag
# ``&`` builds a new enum member, a dict lookup per access adds up on the MVM path).
_STATUS, _CONTROL, _SQ_TAIL, _CQ_HEAD, _BOOT_COUNT, _MAGIC, _IRQ_ARM = (
    r.OFFSET[name]
    for name in ("STATUS", "CONTROL", "SQ_TAIL", "CQ_HEAD", "BOOT_COUNT", "MAGIC", "IRQ_ARM")
)
_RESET, _ENABLE = int(r.Control.RESET), int(r.Control.ENABLE)
_PARKED = int(r.Status.PARKED)
_HOST_MEM_BASE, _HOST_MEM_BYTES = r.OFFSET["HOST_MEM_BASE"], r.OFFSET["HOST_MEM_BYTES"]
_IN_HOST_MEMORY = r.IN_HOST_MEMORY


class IncompatibleBoard(BoardUnavailable):
    """BAR0 answers, but not as a SIDRA board this driver speaks to."""


class DeviceSilent(DeadlineExceeded):
    """The device did not even acknowledge a ring reset: nobody services the rings."""


@dataclass
class Command:
    """One command for the rings: its opcode, payload parts and modeled time."""

    opcode: int
    parts: Sequence[Buffer]
    """The payload, in order: bytes, or C-contiguous arrays copied into the window as
    they are (a batch is not serialized first)."""
    device_s: float = 0.0
    """Upper bound of the board's time for it, s (stretches the deadline)."""
    head_len: int = 0
    """Bytes of the payload head when an array follows it staged (Program), else 0."""
    result_bytes: int = 0
    """The size of a pass's result array, for which room in host memory is lent when
    it pays (0: the answer comes in the output window)."""
    lent: Lent | None = None
    """Room in host memory lent for it already (a part of a span), else lent at submission."""
    payload_len: int = field(init=False)

    def __post_init__(self) -> None:
        self.payload_len = sum(memoryview(part).nbytes for part in self.parts)


@dataclass(frozen=True, slots=True)
class Completion:
    status: int
    head: bytes
    data: npt.NDArray[np.uint8]
    """The result array's bytes, copied out of the window into memory of its own, or
    where the device wrote them in host memory (the chunk free once they are gone)."""


def identify(bar: RegisterIO) -> tuple[BoardInfo, int, Feature]:
    """Checks MAGIC, VERSION and BOARD_ID; returns (info without profile, BOOT_COUNT,
    features). Raises BoardUnavailable (removed) or IncompatibleBoard."""
    reg = r.OFFSET
    magic = bar.read32(reg["MAGIC"])
    if magic == ALL_ONES:
        raise BoardUnavailable(f"{bar.name}: every register reads 0xFFFFFFFF (device removed)")
    if magic != r.MAGIC:
        raise IncompatibleBoard(
            f"{bar.name}: MAGIC 0x{magic:08x}, a SIDRA board reads 0x{r.MAGIC:08x} ('SDRA'): "
            "another device at that address, or a board whose firmware is not running "
            "(docs/pcie.md, Pitfalls)"
        )
    version = bar.read32(reg["VERSION"])
    if version >> 16 != r.VERSION >> 16:
        raise IncompatibleBoard(
            f"{bar.name}: register map version {version >> 16}.{version & 0xFFFF}; this driver "
            f"speaks major version {r.VERSION >> 16}"
        )
    board_id = bar.read32(reg["BOARD_ID"])
    if board_id != r.BOARD_ID:
        raise IncompatibleBoard(
            f"{bar.name}: BOARD_ID 0x{board_id:04x} unknown; this driver drives 0x{r.BOARD_ID:04x}"
        )
    depth, window = bar.read32(reg["QUEUE_DEPTH"]), bar.read32(reg["SLOT_WINDOW_BYTES"])
    if not 1 <= depth <= r.QUEUE_DEPTH or window != r.SLOT_WINDOW_BYTES:
        raise IncompatibleBoard(
            f"{bar.name}: queue depth {depth} / slot window {window} B; the map of version "
            f"{r.VERSION >> 16} has room for depth 1..{r.QUEUE_DEPTH}, windows of "
            f"{r.SLOT_WINDOW_BYTES} B"
        )
    raw = bar.read_bytes(r.IDENTITY_OFFSET, len(r.IDENTITY_STRINGS) * r.IDENTITY_BYTES)
    names = []
    for i, name in enumerate(r.IDENTITY_STRINGS):
        field = raw[i * r.IDENTITY_BYTES : (i + 1) * r.IDENTITY_BYTES].rstrip(b"\0")
        try:
            names.append(field.decode("utf-8"))
        except UnicodeDecodeError:
            raise IncompatibleBoard(
                f"{bar.name}: IDENTITY {name} at 0x{r.IDENTITY_OFFSET + i * r.IDENTITY_BYTES:04x}"
                f" is not UTF-8 text ({field[:16].hex(' ')} ...): blank or unwritten "
                "identity flash? program the board's identity, or update its firmware"
            ) from None
    features = Feature(bar.read32(reg["FEATURES"]) & 0xFFFF)
    f64 = {name: f64_of(bar.read64(reg[name])) for name in _F64}
    info = BoardInfo(
        model=names[0],
        serial_number=names[1],
        firmware_version=names[2],
        emulator_preset=names[3],
        tile_count=bar.read32(reg["TILES"]),
        rows=bar.read32(reg["ROWS"]),
        cols=bar.read32(reg["COLS"]),
        dac_bits=bar.read32(reg["DAC_BITS"]),
        adc_bits=bar.read32(reg["ADC_BITS"]),
        g_min_us=f64["G_MIN_US"],
        g_max_us=f64["G_MAX_US"],
        read_voltage_max_v=f64["READ_VOLTAGE_MAX_V"],
        emulated=bool(features & Feature.EMULATED),
        timing=BoardTiming(*(f64[name] for name in _TIMING)),
        adc_full_scale_ua=f64["ADC_FULL_SCALE_UA"],
    )
    impossible = info.impossible()
    if impossible:  # named as the registers are (TILES, G_MIN_US, MVM_PASS_NS)
        registers = [_register_named(problem) for problem in impossible]
        raise IncompatibleBoard(
            f"{bar.name}: capabilities no board can have: {'; '.join(registers)} (blank "
            "or wrong firmware, or a register map mismatch)"
        )
    return info, bar.read32(reg["BOOT_COUNT"]), features


_TIMES = ("PROGRAM_CELL_NS", "CELL_NS", "PASS_VECTOR_NS", "COMMAND_US")
"""The command-time registers, in :class:`CommandTimes`' order."""


def declared_times(bar: RegisterIO) -> CommandTimes:
    """The command times the board declares (register map 1.3); none from a board of an
    earlier map, whose registers there are not these."""
    if bar.read32(r.OFFSET["VERSION"]) & 0xFFFF < 3:
        return NONE_DECLARED
    return CommandTimes(*(bar.read32(r.OFFSET[name]) for name in _TIMES))


def _register_named(problem: str) -> str:
    """``tile_count: got 0, ...`` as the register map names it: ``TILES: got 0, ...``."""
    field, _, rest = problem.partition(":")
    field = field.removeprefix("timing.")
    register = {"tile_count": "TILES", "serial_number": "IDENTITY serial_number"}.get(
        field, field.upper()
    )
    return f"{register}:{rest}"


_TIMING = ("MVM_PASS_NS", "WRITE_PASS_NS", "VERIFY_READ_NS", "HOST_LOSS_NS", "BOARD_POWER_W")
_F64 = ("G_MIN_US", "G_MAX_US", "READ_VOLTAGE_MAX_V", *_TIMING, "ADC_FULL_SCALE_UA")


@dataclass(slots=True)
class _InFlight:
    index: int
    slot: int
    deadline: float
    kind: tuple[int, int]
    """(opcode, payload size class): commands whose completion times are alike."""
    submitted: float
    lent: Lent | None = None
    """The chunk of host memory lent for the result, if any."""


class Queues:
    """The submission and completion rings of one mapped BAR (not thread-safe)."""

    def __init__(
        self, bar: RegisterIO, boot_count: int, timeout_s: float, host_results: bool = False
    ) -> None:
        """``host_results``: the board writes pass results into host memory (FEATURES
        bit 3); used where the transport has host memory to give it (a virtual board)."""
        self.bar = bar
        self.boot_count = boot_count
        self.timeout_s = timeout_s
        self.depth = bar.read32(r.OFFSET["QUEUE_DEPTH"])
        self.spin_gate = SpinGate()
        """Whether spinning pays on this machine right now (sidra.drivers.pcie.waiting)."""
        self.service_times = ServiceTimes()
        """Expected completion time of each command kind (sidra.drivers.pcie.waiting)."""
        # Where everything of a slot and a ring entry lies, computed once (the MVM path).
        self._in = [r.in_window(slot) for slot in range(self.depth)]
        self._out = [r.out_window(slot) for slot in range(self.depth)]
        self._sq = [r.SQ_OFFSET + i * r.SUBMISSION.size for i in range(self.depth)]
        self._cq = [r.CQ_OFFSET + i * r.COMPLETION.size for i in range(self.depth)]
        self._unlearned: tuple[tuple[int, int], float, bool] | None = None
        self._host_results = host_results
        self._host_offered = host_results and bar.host_memory_file(0) is not None
        self.host: HostMemory | None = None
        """The host-memory region of this ring generation (None: results in the windows)."""
        self.reset_rings()

    # -- ring reset ------------------------------------------------------------------------

    def reset_rings(self) -> None:
        """CONTROL = RESET | ENABLE and wait for the device to clear RESET: both ends
        start again at entry 0, phase 1, with an empty completion ring."""
        self.sq_tail = self.cq_head = 0
        self.next_id = 0
        self.free = list(range(self.depth))
        host = self._announce_host_memory()
        try:
            self.bar.write32(_CONTROL, _RESET | _ENABLE)
            self._kick_if_parked()
            deadline = time.monotonic() + self.timeout_s
            waited = Backoff()
            while self.bar.read32(_CONTROL) & _RESET:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise DeviceSilent(
                        f"{self.bar.name}: the device did not acknowledge a ring reset "
                        f"within {self.timeout_s:.3f} s: nothing services the rings (a virtual "
                        "board: is its process running? a board: its firmware hung; reset or "
                        "power-cycle it)"
                    )
                self._kick_if_parked()  # a kick lost to the race Queues._wait describes
                waited.wait()
        finally:
            if host is not None:
                host.remove_name()  # the device has mapped it, or never will
        if host is not None and self.bar.read64(_HOST_MEM_BYTES) != host.size:
            host = None  # the device could not reach it: results in the windows
        self.host = host

    def _announce_host_memory(self) -> HostMemory | None:
        """A fresh host-memory region for the rings about to restart, in HOST_MEM_BASE
        and HOST_MEM_BYTES (chunks lent before stay valid with the arrays over them;
        the device forgets the old region at the reset)."""
        self.host = None
        if not self._host_results:
            return None
        host = None
        if self._host_offered:
            try:
                host = HostMemory(self.bar.host_memory_file)
            except OSError:
                host = None  # no room for it: results in the windows
        self.bar.write64(_HOST_MEM_BASE, host.base if host is not None else 0)
        self.bar.write64(_HOST_MEM_BYTES, host.size if host is not None else 0)
        return host

    # -- commands --------------------------------------------------------------------------

    def run(self, commands: Sequence[Command]) -> list[Completion]:
        """Runs ``commands`` with up to ``depth`` in flight; completions in command order.

        A completion may come back out of order: it is matched by command id."""
        if not self.bar.present():  # an fstat: a removed board answers nothing
            raise BoardUnavailable(f"{self.bar.name}: the device is gone (removed)")
        self._learn_last()
        results: list[Completion | None] = [None] * len(commands)
        in_flight: dict[int, _InFlight] = {}
        queued = 0
        while queued < len(commands) or in_flight:
            while queued < len(commands) and self.free:
                self._submit(queued, commands[queued], in_flight)
                queued += 1
            self._kick_if_parked()
            cid, completion = self._reap(in_flight)
            results[in_flight.pop(cid).index] = completion
        return results  # type: ignore[return-value]  # every index was filled

    def run_one(
        self, opcode: int, head: bytes, data: memoryview, device_s: float, result_bytes: int = 0
    ) -> tuple[int, int, npt.NDArray[np.uint8], Lent | None]:
        """One command with nothing else in flight, payload ``head`` then ``data`` (bytes);
        returns its completion's status, the length of its response head, the response
        copied out of the window in one copy (head, then result), and the chunk the result
        lies in instead when the device wrote it into host memory (its ``result_len``
        set), the response then being the head alone. ``result_bytes``: the size of a pass's
        result, for which a chunk of host memory is lent when it pays (0: never).

        :meth:`run` for the one case that dominates a training loop (a single MVM),
        without its bookkeeping for many: the same accesses in the same order (payload,
        entry, doorbell, STATUS read; phase word, entry, window, CQ_HEAD), and whatever
        need not come before the doorbell comes after it, while the board works."""
        size = len(head) + len(data)
        if size > r.SLOT_WINDOW_BYTES:
            raise FailedPrecondition(
                f"a command payload of {size} bytes does not fit a slot window "
                f"of {r.SLOT_WINDOW_BYTES} bytes"
            )
        # (the bound inline: a single MVM makes no call for host memory)
        lent = self._lend(result_bytes) if result_bytes >= MIN_RESULT_BYTES else None
        try:  # (free in CPython 3.11 unless raised: the single MVM pays nothing for it)
            bar, depth = self.bar, self.depth
            slot = self.free.pop()
            offset = self._in[slot]
            bar.write_bytes(offset, head)  # 1. the payload, bulk
            bar.write_bytes(offset + len(head), data)
            cid = self.next_id
            self.next_id = (cid + 1) & 0xFFFF
            if lent is None:
                entry = r.SUBMISSION.pack(cid, opcode, self.boot_count, size, slot, 0, 0, 0)
            else:
                entry = r.SUBMISSION.pack(
                    cid, opcode, self.boot_count, size, slot, 0, lent.room, lent.address
                )
            bar.write_bytes(self._sq[self.sq_tail % depth], entry)  # 2. the submission entry
            self.sq_tail = tail = (self.sq_tail + 1) & 0xFFFF_FFFF
            bar.write32(_SQ_TAIL, tail)  # 3. the doorbell, last
            submitted = time.perf_counter()
            self._kick_if_parked()  # the STATUS read that flushes it
            # While the board runs the command: is the device still there? (A pass changes
            # nothing a host could see again on a board that is gone, so asking now, not
            # before the doorbell, loses nothing.)
            if not bar.present():
                raise BoardUnavailable(f"{bar.name}: the device is gone (removed)")
            self._learn_last()
            at = self.cq_head % depth
            entry_at = self._cq[at]
            phase = 1 ^ ((self.cq_head // depth) & 1)
            kind = (opcode, size.bit_length())
            overslept = False
            if bar.read32(entry_at + 4) & 1 != phase:
                deadline = time.monotonic() + device_s + self.timeout_s
                flight = {cid: _InFlight(0, slot, deadline, kind, submitted)}
                overslept = self._wait(entry_at + 4, phase, flight)
            done_cid, status, phase_slot, head_len, result_len, _, _ = r.COMPLETION.unpack(
                bar.read_bytes(entry_at, r.COMPLETION.size)
            )
            if done_cid != cid or phase_slot >> 8 != slot:
                raise BoardUnavailable(
                    f"{bar.name}: completion for command {done_cid} in slot {phase_slot >> 8}, "
                    f"which is not in flight; the rings are out of step"
                )
            # Learned while the next command runs (_learn_last): not between the answer and
            # the caller.
            self._unlearned = (kind, time.perf_counter() - submitted, overslept)
            if head_len + result_len > r.SLOT_WINDOW_BYTES:  # (inline: no call when right)
                self._check_sizes(cid, phase_slot, head_len, result_len)
            if phase_slot & _IN_HOST_MEMORY:
                self._in_host(lent, cid, result_len)
                response = bar.read_array(self._out[slot], head_len)
            else:
                response = bar.read_array(self._out[slot], head_len + result_len)
                if lent is not None:
                    lent.give_back()  # answered in the window (an error, or by choice)
                    lent = None
            self.cq_head = (self.cq_head + 1) & 0xFFFF_FFFF
            bar.write32(_CQ_HEAD, self.cq_head)  # consumed: the slot is ours
            self.free.append(slot)
            return status, head_len, response, lent
        except BaseException:
            if lent is not None:
                lent.give_back()  # the device wrote nothing a caller holds
            raise

    def _check_sizes(self, cid: int, phase_slot: int, head_len: int, result_len: int) -> None:
        """BoardUnavailable, as for an entry not in flight (the link dropped, the rings
        reset at the next call), when a completion's answer would run past its slot's
        output window: read on, it would be another slot's bytes."""
        in_window = head_len + (0 if phase_slot & _IN_HOST_MEMORY else result_len)
        if in_window > r.SLOT_WINDOW_BYTES:
            raise BoardUnavailable(
                f"{self.bar.name}: completion for command {cid} gives a {head_len}-byte head "
                f"and {result_len} result bytes; the slot's output window holds "
                f"{r.SLOT_WINDOW_BYTES}: the board is out of step"
            )

    def _lend(self, result_bytes: int) -> Lent | None:
        """Room in host memory for a result of ``result_bytes``, when it pays."""
        host = self.host
        if host is None or result_bytes < MIN_RESULT_BYTES:
            return None
        return host.lend(result_bytes)

    def _in_host(self, lent: Lent | None, cid: int, result_len: int) -> Lent:
        """The chunk a completion says it answered in (phase_and_slot bit 1), its
        ``result_len`` noted; BoardFault when the command was lent no room, or less."""
        if lent is None or result_len > lent.room:
            raise BoardFault(
                f"{self.bar.name}: command {cid} answered {result_len} B in host memory, "
                f"where it was lent {0 if lent is None else lent.room} B"
            )
        lent.result_len = result_len
        return lent

    def _learn_last(self) -> None:
        """Folds the completion time run_one left unlearned into the service times."""
        if self._unlearned is not None:
            self.service_times.learn(*self._unlearned)
            self._unlearned = None

    def _submit(self, index: int, command: Command, in_flight: dict[int, _InFlight]) -> None:
        if command.payload_len > r.SLOT_WINDOW_BYTES:
            raise FailedPrecondition(
                f"a command payload of {command.payload_len} bytes does not fit a slot window "
                f"of {r.SLOT_WINDOW_BYTES} bytes"
            )
        bar = self.bar
        slot = self.free.pop()
        offset = r.in_window(slot)
        for part in command.parts:  # 1. the payload, bulk
            bar.write_bytes(offset, part)
            offset += memoryview(part).nbytes
        cid, self.next_id = self.next_id, (self.next_id + 1) & 0xFFFF
        lent = command.lent or self._lend(command.result_bytes)
        entry = r.SUBMISSION.pack(
            cid, command.opcode, self.boot_count, command.payload_len, slot, command.head_len,
            0 if lent is None else lent.room, 0 if lent is None else lent.address,
        )  # fmt: skip
        # 2. the submission entry (ring memory, one bulk copy)
        bar.write_bytes(r.SQ_OFFSET + (self.sq_tail % self.depth) * r.SUBMISSION.size, entry)
        self.sq_tail = (self.sq_tail + 1) & 0xFFFF_FFFF
        # The deadline: this command's modeled time after those queued ahead of it.
        now = time.monotonic()
        start = now
        if in_flight:
            start = max(now, max(f.deadline for f in in_flight.values()) - self.timeout_s)
        kind = (command.opcode, command.payload_len.bit_length())
        deadline = start + command.device_s + self.timeout_s
        in_flight[cid] = _InFlight(index, slot, deadline, kind, time.perf_counter(), lent)
        bar.write32(_SQ_TAIL, self.sq_tail)  # 3. the doorbell, last

    def _kick_if_parked(self) -> None:
        """Reads STATUS, which flushes the posted doorbell writes; a virtual board whose
        loop sleeps (PARKED) is kicked as well."""
        if self.bar.read32(_STATUS) & _PARKED:
            self.bar.kick(_SQ_TAIL)

    def _reap(self, in_flight: dict[int, _InFlight]) -> tuple[int, Completion]:
        """Waits for the next completion; returns its command id and response."""
        bar = self.bar
        offset = r.CQ_OFFSET + (self.cq_head % self.depth) * r.COMPLETION.size
        phase = 1 ^ ((self.cq_head // self.depth) & 1)
        overslept = False
        if bar.read32(offset + 4) & 1 != phase:
            overslept = self._wait(offset + 4, phase, in_flight)
        cid, status, phase_slot, head_len, result_len, _, _ = r.COMPLETION.unpack(
            bar.read_bytes(offset, r.COMPLETION.size)
        )
        flight = in_flight.get(cid)
        if flight is None or phase_slot >> 8 != flight.slot:
            raise BoardUnavailable(
                f"{bar.name}: completion for command {cid} in slot {phase_slot >> 8}, "
                f"which is not in flight; the rings are out of step"
            )
        self.service_times.learn(flight.kind, time.perf_counter() - flight.submitted, overslept)
        if head_len + result_len > r.SLOT_WINDOW_BYTES:  # (inline: no call when right)
            self._check_sizes(cid, phase_slot, head_len, result_len)
        out = r.out_window(flight.slot)
        head = bar.read_bytes(out, head_len)
        lent = flight.lent
        if phase_slot & _IN_HOST_MEMORY:
            lent = self._in_host(lent, cid, result_len)
            data = lent.array((result_len,), np.dtype(np.uint8))
        else:
            if lent is not None:
                lent.give_back()  # answered in the window
            data = bar.read_array(out + head_len, result_len)
        self.cq_head = (self.cq_head + 1) & 0xFFFF_FFFF
        bar.write32(_CQ_HEAD, self.cq_head)  # consumed: the slot is ours
        self.free.append(flight.slot)
        return cid, Completion(status, head, data)

    def _wait(self, phase_at: int, phase: int, in_flight: dict[int, _InFlight]) -> bool:
        """Until the completion entry at ``phase_at`` turns ``phase``; checks the device
        on the way. A board that can raise interrupts (a virtual board: IRQ_ARM) is
        slept on after a short spin, or at once for a long command; otherwise the host
        sleeps through most of a long command, then spins, polls and naps. True when
        such a sleep ended with the completion already there (it was too long)."""
        bar = self.bar
        now = time.perf_counter()
        nap = min(self.service_times.sleep_s(f.kind, now - f.submitted) for f in in_flight.values())
        if nap > 0.0 and not bar.can_sleep:
            time.sleep(nap)
            if bar.read32(phase_at) & 1 == phase:
                return True
        # A long command, or a board that does not run while we spin: no spinning.
        spin = not (nap > 0.0 and bar.can_sleep) and (
            not bar.can_sleep or self.spin_gate.should_spin()
        )
        # A long command is slept through in one sleep, until shortly after it should be
        # done: the interrupt ends it sooner, and a host waking up every millisecond
        # would take a core from the board's product for nothing (a reset or a removal
        # of a virtual board raises the interrupt too). After that, CHECK_EVERY_S.
        sleep_s = max(CHECK_EVERY_S, nap + 2 * HYBRID_MARGIN_S)
        waited = Backoff()
        next_check = time.monotonic() + CHECK_EVERY_S
        while bar.read32(phase_at) & 1 != phase:
            if time.monotonic() >= next_check and waited.elapsed() > SPIN_S:
                next_check = time.monotonic() + CHECK_EVERY_S
                self._check_alive()
                deadline = min(f.deadline for f in in_flight.values())
                if time.monotonic() > deadline:
                    self._timed_out(deadline, in_flight)
            if not spin or (bar.can_sleep and waited.elapsed() > SPIN_S):
                if spin:
                    # Counted against spinning only when every command in flight was
                    # known to be short: a long one not learned yet runs a spin out too.
                    known = self.service_times.known_short
                    if all(known(f.kind) for f in in_flight.values()):
                        self.spin_gate.spun(answered=False)
                    spin = False
                # A board parked while a command is in flight missed its kick: the
                # doorbell's store and its STATUS load, and the board's PARKED store
                # and SQ_TAIL load, carry no fence, so each side may see the other's
                # old value. Looking again before every sleep bounds that lost kick by
                # the spin and CHECK_EVERY_S, not by the board's park (up to
                # sidra.emulator.pcie.device.IDLE_PARK_S), and costs one read while it runs.
                self._kick_if_parked()
                # Arm, look once more, sleep: a completion posted in between either shows
                # in the look or finds IRQ_ARM set and wakes us. (Both sides store, then
                # load, without a fence; the timeout bounds that rare lost wake-up.)
                bar.write32(_IRQ_ARM, 1)
                if bar.read32(phase_at) & 1 == phase:
                    break
                bar.wait_word(_IRQ_ARM, 1, sleep_s)
                sleep_s = CHECK_EVERY_S
            else:
                # Bare looks between the bookkeeping above: the answer is seen within a
                # register read of its arrival, not a loop of clock reads later.
                for _ in _SPIN_BURST:
                    if bar.read32(phase_at) & 1 == phase:
                        break
                else:
                    waited.wait()
        if spin and bar.can_sleep:
            self.spin_gate.spun(answered=True)
        return False

    # -- what went wrong -------------------------------------------------------------------

    def _check_alive(self) -> None:
        """Raises BoardUnavailable for a removed device, BoardReset for a new boot."""
        if not self.bar.present():
            raise BoardUnavailable(f"{self.bar.name}: the device is gone (removed)")
        boot = self.bar.read32(_BOOT_COUNT)
        if boot == ALL_ONES and self.bar.read32(_MAGIC) == ALL_ONES:
            raise BoardUnavailable(
                f"{self.bar.name}: every register reads 0xFFFFFFFF (surprise removal)"
            )
        if boot != self.boot_count:
            raise BoardReset(
                f"board at {self.bar.name} restarted (boot count {self.boot_count} -> {boot}); "
                f"its state is lost and the commands in flight did not run"
            )

    def _timed_out(self, deadline: float, in_flight: dict[int, _InFlight]) -> None:
        """A completion is overdue: the device is hung or gone. Abort everything in flight
        with a ring reset (the device drops what it holds) and raise DeadlineExceeded."""
        late = time.monotonic() - deadline
        what = (
            f"{self.bar.name}: no completion for {len(in_flight)} command(s) in flight, "
            f"{late * 1e3:.0f} ms past the deadline (modeled time + {self.timeout_s:.3f} s)"
        )
        try:
            self.reset_rings()
        except DeviceSilent as exc:
            raise DeviceSilent(f"{what}; the device does not answer at all") from exc
        raise DeadlineExceeded(
            f"{what}; the device answered a ring reset, commands aborted (a board that hangs "
            "on a command: its firmware's log; a slow one: a longer ?timeout= in its URL)"
        )
