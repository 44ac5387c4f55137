"""The virtual PCIe board: the emulator behind BAR0's rings, in a mapped file.

:class:`PcieDevice` creates the BAR file (sized to BAR_SIZE *before* it is
mapped: touching a page past the end of a file is SIGBUS), writes identity,
capabilities and timing from an :class:`EmulatorDriver`, then renames it into
place, so a host never maps a half-written board. :meth:`PcieDevice.serve`
is the device loop: it polls CONTROL and SQ_TAIL, runs each submission through
its wire entry (the same table the serial firmware uses) and the emulator,
writes the response into the slot's output window and then the completion,
its phase word last (sidra.drivers.pcie.queues, "Memory ordering"). A pass whose
submission lends room in host memory (register map 1.2) computes its currents
there instead: the region the host announced at the last ring reset is a file
beside the BAR file, which this process maps as an IOMMU would let a board reach
host memory (sidra.drivers.pcie.host_memory).

An idle board busy-polls briefly, then sleeps between polls (50 µs, later up to
5 ms), so it never holds a core a host process needs (CI machines have two).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import validation as check
from sidra.drivers.errors import OutOfRange, SidraError
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import ALL_ONES, FileBar, f64_bits, host_memory_path
from sidra.drivers.requests import MVMRequest, PerturbedMVMRequest, TransposeMVMRequest
from sidra.drivers.types import BoardInfo, Buffer, MVMResult, Region
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.device_times import NONE_DECLARED, CommandTimes
from sidra.drivers.wire.messages import NO_VALUE, Feature, Msg, Status
from sidra.drivers.wire.operations import InlineSizeError, entry_for_message
from sidra.emulator.board import EmulatedBoard
from sidra.emulator.config import BoardProfile
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware.faults import FAULT_LOGGER, left_text
from sidra.emulator.pcie.faults import PcieFaults

__all__ = ["IDLE_PARK_S", "PcieDevice"]

fault_log = logging.getLogger(FAULT_LOGGER)

ERROR_LIMIT = 4096
"""Largest error payload the device writes, bytes."""
SPIN_S = 1e-3
"""An idle device busy-polls this long: a host's next command usually comes that soon,
even when the host slept and had to be woken first. Then it parks (sleeps until a kick,
never sched_yield: on a busy machine a yield can cost a whole scheduler tick), and takes
no core while the host computes."""

LONG_STEP_S = 500e-6
"""After commands that took this long the device parks at once instead of spinning: its
host slept through them and is now busy copying the answer out and the next command in,
and on a 2-core machine a spinning board would take a share of the host's core; the next
doorbell kicks it."""

# The device loop polls these: plain ints, looked up once (an IntFlag ``&`` builds a new
# enum member on every poll, and a dict lookup per register read adds up).
_CONTROL, _STATUS, _SQ_TAIL, _SQ_HEAD, _CQ_HEAD, _IRQ_ARM = (
    r.OFFSET[name] for name in ("CONTROL", "STATUS", "SQ_TAIL", "SQ_HEAD", "CQ_HEAD", "IRQ_ARM")
)
_RESET, _ENABLE = int(r.Control.RESET), int(r.Control.ENABLE)
_READY, _BUSY, _NEEDS_INIT = int(r.Status.READY), int(r.Status.BUSY), int(r.Status.NEEDS_INIT)
_PARKED = int(r.Status.PARKED)
_HOST_MEM_BASE, _HOST_MEM_BYTES = r.OFFSET["HOST_MEM_BASE"], r.OFFSET["HOST_MEM_BYTES"]


_SPIN_BURST = range(32)
"""Reads of SQ_TAIL in a row while spinning, between rounds of the device loop (~5 µs)."""
_IN = [r.in_window(slot) for slot in range(r.QUEUE_DEPTH)]
_OUT = [r.out_window(slot) for slot in range(r.QUEUE_DEPTH)]
_CQ = [r.CQ_OFFSET + i * r.COMPLETION.size for i in range(r.QUEUE_DEPTH)]
_MSG = {int(msg): msg for msg in Msg}
"""Opcode -> message id, without building an enum member per command."""


IDLE_PARK_S = 0.25
"""Longest park of a device idle for a second or more, s. A doorbell kicks a parked
device at once, and a host whose kick was lost (the race ``_park`` describes) kicks
again before each of its own sleeps, so nothing waits for this timeout; it only sets
how often an idle board wakes for nothing: 4 times a second (with 5 ms parks, 200
wake-ups a second took 1.8-2.3 % of a Zen 3 vCPU)."""


def _idle_sleep(idle_s: float) -> float:
    """Park of a device idle for ``idle_s``: 1 ms for the first 50 ms (a burst's next
    command), 5 ms up to a second, then :data:`IDLE_PARK_S`."""
    if idle_s < 50e-3:
        return 1e-3
    return 5e-3 if idle_s < 1.0 else IDLE_PARK_S


@dataclass(slots=True)
class _Entry:
    cid: int
    opcode: int
    epoch: int
    payload_len: int
    slot: int
    head_len: int
    result_room: int = 0
    result_addr: int = 0


@dataclass(slots=True)
class _Answer:
    entry: _Entry
    status: int
    head: bytes
    data: Buffer = b""
    time_ns: float = 0.0
    energy_nj: float = 0.0
    placed: bool = False
    """The data lies where it goes already: after the head in the output window, or in
    host memory (a pass computed there)."""
    in_host: bool = False
    """The data lies in host memory, at the submission's result_addr."""


@dataclass(frozen=True, slots=True)
class _PassPath:
    """How the board runs one kind of pass (MVM, TransposeMVM) straight from its window."""

    info: BoardInfo
    request: type[MVMRequest] | type[TransposeMVMRequest]
    inputs: int
    outputs: int
    run: Callable[
        [int, npt.NDArray[np.float32], npt.NDArray[np.float32] | None, Region | None], MVMResult
    ]
    """The emulator core's pass (EmulatedBoard.mvm or .transpose_mvm), computing in the
    array it is given, over a region (None: the whole tile)."""

    def shape(self, region: Region | None) -> tuple[int, int, str]:
        """(inputs, outputs, what the inputs drive) of a pass over ``region``."""
        if region is None:
            return self.inputs, self.outputs, self.request.driven
        return (
            self.request.region_inputs(region),
            self.request.region_outputs(region),
            self.request.driven_in_region,
        )


def _pass_paths(board: EmulatedBoard) -> dict[int, _PassPath]:
    info = board.info
    rows, cols = info.rows, info.cols
    return {
        int(Msg.MVM): _PassPath(info, MVMRequest, rows, cols, board.mvm),
        int(Msg.TRANSPOSE_MVM): _PassPath(
            info, TransposeMVMRequest, cols, rows, board.transpose_mvm
        ),
    }


_WIRE_F32 = np.dtype("<f4")
_PASS_HEAD = struct.Struct(m.MVM_RESP.format + m.COST.format.lstrip("<"))
"""A pass's response head: MVM_RESP then COST (docs/wire-protocol.md §6)."""
_MVM_REQ_SIZE = m.MVM_REQ.size
_IN_PLACE = _WIRE_F32.isnative
"""Whether a pass can compute its currents in the output window itself (a little-endian
machine: the window holds little-endian float32)."""


def _region(payload: memoryview, flags: int, info: BoardInfo) -> Region | None:
    """The region a pass's head flags (resolved, None for the whole tile as the request's
    own checks make it); None too when it is anything the generic path must refuse."""
    if flags != m.PASS_REGION_FLAG or len(payload) < _MVM_REQ_SIZE + m.MVM_REGION.size:
        return None
    try:
        region = check.check_region(info, Region(*m.MVM_REGION.unpack_from(payload, _MVM_REQ_SIZE)))
    except SidraError:
        return None
    return None if region.shape == (info.rows, info.cols) else region


class _Window:
    """The StageReader of one command: its staged array lies after the head."""

    def __init__(self, device: PcieDevice, array: memoryview) -> None:
        self.device, self.array = device, array

    @property
    def info(self) -> BoardInfo:
        return self.device.driver.info

    def verified(self, stage_id: int, crc: int, size: int) -> bytes:
        """The array after the head: stage 0 is the command's own input window."""
        if stage_id != 0:
            raise _Refused(
                Status.BAD_PAYLOAD,
                f"stage {stage_id}: a PCIe command's array "
                "lies after its head in its own input window (stage 0)",
            )
        if len(self.array) != size:
            raise _Refused(Status.BAD_PAYLOAD, f"{len(self.array)} array bytes, need {size}")
        if zlib.crc32(self.array) != crc:
            raise _Refused(Status.VERIFY_FAILED, "the array in the input window fails its CRC")
        return bytes(self.array)  # a copy: the board keeps nothing that lies in the window


class _Refused(Exception):
    """A submission the device refuses with ``status``: ``text`` says why, ``field`` and
    ``value`` name what was wrong when a field was (wire-protocol §8.2)."""

    def __init__(self, status: Status, text: str, field: str = "", value: Any = NO_VALUE) -> None:
        super().__init__(text)
        self.status = status
        self.field = field
        self.value = value


class PcieDevice:
    """One virtual PCIe board in the file ``path`` (not thread-safe: one device loop)."""

    def __init__(
        self,
        path: str,
        profile: BoardProfile,
        seed: int = 0,
        faults: PcieFaults | None = None,
        boot_count: int | None = None,
        slow: CommandTimes = NONE_DECLARED,
        declare_times: bool = True,
        serial_number: str | None = None,
    ) -> None:
        """``serial_number``: what the identity registers say, the same across resets
        (None: ``EMU-<model>-<seed>``). ``slow``: the board takes that long over its
        commands, as a slow firmware may (``command_us`` each, ``program_cell_ns`` each
        cell a Program writes; the others are not slowed), and declares it in
        PROGRAM_CELL_NS .. COMMAND_US unless ``declare_times`` is False."""
        self.path, self.profile, self.seed = path, profile, seed
        self.serial_number = serial_number
        self.slow, self.declare_times = slow, declare_times
        # Decided once: every doorbell's step picks its loop by it.
        self._run_one = self._run_slowly if slow != NONE_DECLARED else self._run
        self.faults = faults or PcieFaults()
        # A random first boot count stands in for one kept in NVM (as the serial board's).
        self.boot_count = boot_count or int.from_bytes(os.urandom(4), "little") % 0xFFFF_FFFE + 1
        self.executed = 0
        self.bursts_reversed = 0
        """Bursts of two or more commands the reverse fault answered backwards."""
        self.removed = False
        self.orphaned = False
        """Its BAR file was removed or another board's took the path: it stopped serving."""
        self._refuse_if_taken()  # before a 32 MiB file is made (publish checks again)
        self.bar = _create(path)
        self._windows = [
            (
                self.bar.view(_IN[slot], r.SLOT_WINDOW_BYTES),
                self.bar.view(_OUT[slot], r.SLOT_WINDOW_BYTES),
            )
            for slot in range(r.QUEUE_DEPTH)
        ]
        """Each slot's (input, output) window, mapped once: a command takes slices of them."""
        self._host: tuple[int, memoryview] | None = None
        """The host-memory region the host announced at the last ring reset: (bus address,
        its mapping), as an IOMMU would let the device reach it."""
        try:
            self._boot()
        except BaseException:  # a board that cannot be made (a profile too large): no file
            self.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.bar.path)
            raise

    # -- power-up --------------------------------------------------------------------------

    def _boot(self) -> None:
        self.driver = EmulatorDriver(self.profile, self.seed, self.serial_number)
        self._passes = _pass_paths(self.driver.board)
        self.sq_head = self.cq_tail = 0
        info, bar, reg = self.driver.info, self.bar, r.OFFSET
        names = (info.model, info.serial_number, info.firmware_version, info.emulator_preset)
        raw = b"".join(n.encode()[: r.IDENTITY_BYTES].ljust(r.IDENTITY_BYTES, b"\0") for n in names)
        bar.write_bytes(r.IDENTITY_OFFSET, raw)
        u32 = {
            "MAGIC": r.MAGIC, "VERSION": r.VERSION, "BOARD_ID": r.BOARD_ID,
            "TILES": info.tile_count, "ROWS": info.rows, "COLS": info.cols,
            "DAC_BITS": info.dac_bits, "ADC_BITS": info.adc_bits,
            "FEATURES": Feature.EMULATED | Feature.PROFILE | Feature.REGION_PASS
            | Feature.HOST_RESULTS,
            "QUEUE_DEPTH": r.QUEUE_DEPTH,
            "SLOT_WINDOW_BYTES": r.SLOT_WINDOW_BYTES, "ERROR_CODE": 0,
        }  # fmt: skip
        for name, value in u32.items():
            bar.write32(reg[name], int(value))
        t = info.timing
        f64: dict[str, float] = {
            "G_MIN_US": info.g_min_us, "G_MAX_US": info.g_max_us,
            "READ_VOLTAGE_MAX_V": info.read_voltage_max_v, "MVM_PASS_NS": t.mvm_pass_ns,
            "WRITE_PASS_NS": t.write_pass_ns, "VERIFY_READ_NS": t.verify_read_ns,
            "HOST_LOSS_NS": t.host_loss_ns, "BOARD_POWER_W": t.board_power_w,
            "ADC_FULL_SCALE_UA": info.adc_full_scale_ua,
        }  # fmt: skip
        for name, number in f64.items():
            bar.write64(reg[name], f64_bits(number))
        for name in ("HOST_MEM_BASE", "HOST_MEM_BYTES"):  # power-up: no host memory
            bar.write64(reg[name], 0)
        declared = self.slow if self.declare_times else NONE_DECLARED
        times = {
            "PROGRAM_CELL_NS": declared.program_cell_ns, "CELL_NS": declared.cell_ns,
            "PASS_VECTOR_NS": declared.pass_vector_ns, "COMMAND_US": declared.command_us,
        }  # fmt: skip
        for name, value in times.items():
            bar.write32(reg[name], value)
        self._release_host_memory()
        bar.write32(reg["BOOT_COUNT"], self.boot_count)
        # Until the host restarts the rings nothing runs: it must learn this boot first.
        bar.write32(_STATUS, _READY | _NEEDS_INIT)
        self.needs_init = True
        """STATUS.NEEDS_INIT as this device last wrote it (the host cannot write STATUS):
        known without reading the register back on every poll."""

    def publish(self) -> None:
        """Moves the initialised file to ``path``: hosts see a whole board or none.

        A board holds a POSIX record lock on its file's first byte for its life (the
        host's lock is a ``flock``, which Linux keeps apart), so a second board started
        on a path a running board serves is refused (EBUSY) instead of replacing it under
        its host; a file left by a board that died holds no lock and is replaced."""
        try:
            fcntl.lockf(self.bar.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            self._refuse_if_taken()
            os.replace(self.bar.path, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.bar.path)  # this board's file, never published
            raise

    def _refuse_if_taken(self) -> None:
        """OSError when ``path`` holds anything but an empty file or a BAR file no board
        serves: EBUSY for a running board's, EEXIST for anything else (a user's file, a
        folder, a device node): the board replaces its path and removes it when it stops,
        so it must never take a file that is not a board's."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise OSError(
                errno.EEXIST,
                f"{self.path}: {_kind(st.st_mode)}, not a BAR file; give a path that does "
                "not exist yet (the board makes the file and removes it when it stops)",
            )
        if st.st_size == 0:  # an empty placeholder (mktemp): nothing in it to lose
            return
        try:
            held = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            magic = int.from_bytes(os.pread(held, 4, r.OFFSET["MAGIC"]), "little")
            if st.st_size != r.BAR_SIZE or magic != r.MAGIC:
                raise OSError(
                    errno.EEXIST,
                    f"{self.path}: a file of {st.st_size:,} bytes that is not a virtual "
                    "board's BAR file (no SIDRA MAGIC); give a path that does not exist "
                    "yet (the board makes the file and removes it when it stops)",
                )
            try:
                fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            except OSError as exc:  # EAGAIN or EACCES: a running board holds it
                raise OSError(
                    errno.EBUSY,
                    f"{self.path}: a running virtual board serves this BAR file (stop it, "
                    "or give another path)",
                ) from exc
        finally:
            os.close(held)  # (the lock taken, if any, goes with it)

    def owns_path(self) -> bool:
        """Whether ``path`` is still this board's file (not one a later board published)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(self.bar.fd).st_ino
        except OSError:
            return False

    def reset(self) -> None:
        """Power-cycles the board: array state and rings lost, BOOT_COUNT + 1."""
        self.boot_count = (self.boot_count + 1) & 0xFFFF_FFFF or 1
        self._boot()
        self.bar.kick(_IRQ_ARM)  # a sleeping host looks now, and finds the new boot

    def remove(self) -> None:
        """Surprise removal: every register reads all ones and the file disappears."""
        for offset in range(0, r.IDENTITY_OFFSET, 4):
            self.bar.write32(offset, ALL_ONES)
        self.bar.kick(_IRQ_ARM)  # a sleeping host looks now, and finds the board gone
        self.removed = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        self._windows = []  # their exports on the mapping first
        self._release_host_memory()
        self.bar.close()

    # -- the device loop -------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Services the rings until ``stop`` is set, the board is removed (a fault), or
        its path no longer names its file (:attr:`orphaned`, seen within a second or so
        of idling)."""
        bar = self.bar
        idle_since = time.perf_counter()
        while not stop.is_set() and not self.removed:
            now = time.perf_counter()
            if self.step():
                idle_since = time.perf_counter()
                if idle_since - now > LONG_STEP_S:
                    idle_since -= SPIN_S  # park now: see LONG_STEP_S
                continue
            idle = now - idle_since
            if idle > SPIN_S:
                park = _idle_sleep(idle)
                # A long park, four times a second: its file removed (rm, a cleanup) or
                # another board's now, nobody can reach this board, which served on
                # unseen while a second board could start at the same path.
                if park == IDLE_PARK_S and not self.owns_path():
                    self.orphaned = True
                    return
                self._park(park)
                continue
            # Bare looks at the doorbell between the rounds of the loop: a command is
            # seen within a register read of its doorbell (a ring reset a round later).
            for _ in _SPIN_BURST:
                if bar.read32(_SQ_TAIL) != self.sq_head:
                    break

    def _park(self, timeout_s: float) -> None:
        """Sleeps until a doorbell kick or ``timeout_s``: STATUS says PARKED meanwhile,
        so a host that rings also kicks (sidra.drivers.pcie.futex). Without futexes, a
        plain sleep. (The host stores SQ_TAIL then loads STATUS; this stores STATUS then
        loads SQ_TAIL; without a fence both may see the old value. The host then kicks
        again before it sleeps itself, and the timeout bounds a kick missed by a host
        that does not.)"""
        bar = self.bar
        if not bar.can_sleep:
            time.sleep(min(timeout_s, 50e-6))
            return
        status = bar.read32(_STATUS)
        bar.write32(_STATUS, status | _PARKED)
        tail = bar.read32(_SQ_TAIL)
        if tail == self.sq_head and not bar.read32(_CONTROL) & _RESET:
            bar.wait_word(_SQ_TAIL, tail, timeout_s)
        if not self.removed:
            bar.write32(_STATUS, bar.read32(_STATUS) & ~_PARKED)

    def step(self) -> bool:
        """One pass: a ring reset or the submissions waiting. True if it did anything."""
        bar = self.bar
        if bar.read32(_CONTROL) & _RESET:
            self._reset_rings()
            return True
        if self.needs_init:
            return False
        tail = bar.read32(_SQ_TAIL)
        if tail == self.sq_head:
            return False
        if self.faults.reverse:  # let a burst of submissions arrive, to answer it reversed
            time.sleep(2e-3)
            tail = bar.read32(_SQ_TAIL)
        entries = self._take(tail)
        bar.write32(_STATUS, _READY | _BUSY)
        # Each answer is posted as soon as it is ready: the host copies one result out
        # while the next command runs. (The reverse fault answers the burst backwards.)
        answers: Iterable[_Answer | None] = map(self._run_one, entries)
        if self.faults.reverse:
            answers = list(answers)
            if len(entries) > 1:
                self._burst_reversed(entries)
            answers = reversed(answers)
        for answer in answers:
            if self.removed or self.needs_init:
                return True  # removed or reset mid-batch: the rest is lost
            if answer is not None:
                self._complete(answer)
        if not self.removed and not self.needs_init:
            bar.write32(_STATUS, _READY)  # a reset keeps NEEDS_INIT
        return True

    def _reset_rings(self) -> None:
        self._attach_host_memory()
        self.sq_head = self.cq_tail = 0
        self.bar.write_bytes(r.CQ_OFFSET, bytes(r.QUEUE_DEPTH * r.COMPLETION.size))
        for offset in (_SQ_TAIL, _CQ_HEAD, _SQ_HEAD, _IRQ_ARM):
            self.bar.write32(offset, 0)
        self.bar.write32(_STATUS, _READY)
        self.needs_init = False
        self.bar.write32(_CONTROL, _ENABLE)  # RESET cleared: the ack, last

    def _attach_host_memory(self) -> None:
        """Takes the region HOST_MEM_BASE and HOST_MEM_BYTES announce (the old one is
        forgotten); HOST_MEM_BYTES back to 0 when it cannot be reached."""
        self._release_host_memory()
        bar = self.bar
        base, size = bar.read64(_HOST_MEM_BASE), bar.read64(_HOST_MEM_BYTES)
        if not size:
            return
        try:
            with open(host_memory_path(self.path, base), "r+b") as f:
                if os.fstat(f.fileno()).st_size < size:
                    raise OSError("smaller than HOST_MEM_BYTES")
                self._host = (base, memoryview(mmap.mmap(f.fileno(), size)))
        except (OSError, ValueError, OverflowError):
            bar.write64(_HOST_MEM_BYTES, 0)  # not reached: the host answers from windows

    def _release_host_memory(self) -> None:
        if self._host is not None:
            view = self._host[1]
            self._host = None
            mapping = view.obj
            view.release()
            if isinstance(mapping, mmap.mmap):
                with contextlib.suppress(BufferError):  # an array still over it: GC frees it
                    mapping.close()

    def _host_room(self, entry: _Entry, size: int) -> memoryview | None:
        """Where in host memory a result of ``size`` bytes goes (None: the output window,
        as when the host gave no room or too little). Room lent outside the region the
        host announced is refused, fit or not: the device never writes memory it was not
        given."""
        room = entry.result_room
        if not room:
            return None
        host = self._host
        start = entry.result_addr - (host[0] if host is not None else 0)
        if host is None or start < 0 or start + room > len(host[1]):
            given = "none" if host is None else f"{len(host[1])} B at 0x{host[0]:x}"
            raise _Refused(
                Status.BAD_PAYLOAD,
                f"result_addr 0x{entry.result_addr:x} (+{room} B of room) lies outside the "
                f"host memory announced ({given})",
            )
        if size > room:
            return None  # lent too little: the output window, bit 1 clear
        return host[1][start : start + size]

    def _take(self, tail: int) -> list[_Entry]:
        """The submissions up to ``tail`` (SQ_TAIL as read), at most a ring's worth."""
        entries: list[_Entry] = []
        while self.sq_head != tail and len(entries) < r.QUEUE_DEPTH:
            offset = r.SQ_OFFSET + (self.sq_head % r.QUEUE_DEPTH) * r.SUBMISSION.size
            raw = self.bar.read_bytes(offset, r.SUBMISSION.size)
            entries.append(_Entry(*r.SUBMISSION.unpack(raw)))
            self.sq_head = (self.sq_head + 1) & 0xFFFF_FFFF
        self.bar.write32(_SQ_HEAD, self.sq_head)
        return entries

    def _run_slowly(self, entry: _Entry) -> _Answer | None:
        """:meth:`_run`, then busy as long as ``slow`` says the command takes (the device
        loop held: a slow firmware takes nothing else meanwhile)."""
        answer = self._run(entry)
        seconds = 1e-6 * self.slow.command_us
        programmed = answer is not None and answer.status == Status.OK
        if programmed and entry.opcode == Msg.PROGRAM_COMMIT and self.slow.program_cell_ns:
            assert answer is not None
            cells = m.PROGRAM_RESP.unpack_from(answer.head)[0]
            seconds += 1e-9 * self.slow.program_cell_ns * cells
        if seconds:
            time.sleep(seconds)
        return answer

    def _run(self, entry: _Entry) -> _Answer | None:
        """Executes one submission; None when it is never to be answered."""
        self.executed += 1
        n, faults = self.executed, self.faults
        if faults.remove_after and n > faults.remove_after:
            self.remove()
            gone = f"registers read all ones, {self.path} gone"
            self._fault_fired("remove_after", entry, f"the board removed ({gone})")
            return None
        if n == faults.reset_after:
            self.reset()  # the command is lost with the board's state
            what = f"the board power-cycled (boot count {self.boot_count}), the command lost"
            self._fault_fired("reset_after", entry, what)
            return None
        if n == faults.hang:
            self._fault_fired("hang", entry, "taken off the ring, never completed")
            return None
        if n == faults.error:
            self._fault_fired("error", entry, "answered INTERNAL")
            return _Answer(entry, Status.INTERNAL, m.encode_error("injected fault: error status"))
        if entry.epoch != self.boot_count:
            text = f"command for boot {entry.epoch}; this board booted as {self.boot_count}"
            return _Answer(entry, Status.STALE_EPOCH, m.encode_error(text))
        if not 0 <= entry.slot < r.QUEUE_DEPTH:  # no window to answer in: no head either
            return _Answer(entry, Status.BAD_PAYLOAD, b"")
        if entry.payload_len > r.SLOT_WINDOW_BYTES:
            text = f"payload of {entry.payload_len} B; a slot window holds {r.SLOT_WINDOW_BYTES}"
            return _Answer(entry, Status.BAD_PAYLOAD, m.encode_error(text))
        # The window itself, not a copy: the host leaves it alone until the completion,
        # and an inline batch is read once, by the validation and the pass.
        payload = self._windows[entry.slot][0][: entry.payload_len]
        try:
            path = self._passes.get(entry.opcode)
            answer = None if path is None else self._pass(entry, payload, path)
            return answer or self._execute(entry, payload)
        except _Refused as exc:
            status, body = exc.status, m.encode_error(str(exc), exc.field, exc.value)
        except (struct.error, InlineSizeError) as exc:
            status, body = Status.BAD_PAYLOAD, m.encode_error(f"malformed payload: {exc}")
        except SidraError as exc:
            status, body = m.error_reply(exc, ERROR_LIMIT)
        except ValueError as exc:  # a fault of this firmware, not of the request
            status, body = Status.INTERNAL, m.encode_error(f"{type(exc).__name__}: {exc}")
        return _Answer(entry, status, body)

    def _fault_fired(self, name: str, entry: _Entry, what: str) -> None:
        """The line of a counted fault that fired on ``entry``, the :attr:`executed`-th
        command: which, on what, and the counted faults still to come."""
        if fault_log.isEnabledFor(logging.INFO):
            fault_log.info(
                "fault %s fired on command %d, %s: %s; %s",
                name, self.executed, _command(entry), what,
                left_text(self.faults.still_to_come(self.executed)),
            )  # fmt: skip

    def _burst_reversed(self, entries: list[_Entry]) -> None:
        """The line of a burst the reverse fault answers backwards (run in order: the
        last ``len(entries)`` commands)."""
        self.bursts_reversed += 1
        if fault_log.isEnabledFor(logging.INFO):
            first = self.executed - len(entries) + 1
            fault_log.info(
                "fault reverse fired on commands %d .. %d, %s: completed in reverse order "
                "(%d so far)",
                first, self.executed, ", ".join(map(_command, entries)), self.bursts_reversed,
            )  # fmt: skip

    def _execute(self, entry: _Entry, payload: memoryview) -> _Answer:
        if entry.opcode == Msg.GET_PROFILE:
            text = json.dumps(self.driver.info.profile, separators=(",", ":")).encode()
            return _Answer(entry, Status.OK, b"", text)
        wire = entry_for_message(entry.opcode)
        if wire is None:
            # As the serial board names it (wire-protocol §8.2): field msg, the opcode.
            why = f"opcode 0x{entry.opcode:02x} unknown"
            raise _Refused(Status.UNKNOWN_MESSAGE, why, "msg", entry.opcode)
        head_len = entry.head_len or len(payload)
        reader = _Window(self, payload[head_len:])
        request = wire.unpack_request(_MSG[entry.opcode], payload[:head_len], reader)
        request = request.checked(self.driver.info)
        # An answer that cannot fit the window is refused before anything runs (the
        # host checks too): a PerturbedMVM would otherwise write and then fail.
        answer = wire.result_bytes(request, self.driver.info)
        if isinstance(request, PerturbedMVMRequest) and answer > r.SLOT_WINDOW_BYTES:
            raise OutOfRange(
                "voltages.shape",
                f"{answer} B of answer",
                f"an answer that fits the {r.SLOT_WINDOW_BYTES} B output window",
            )
        result = self.driver.run(request)
        head, data = wire.pack_result(result)
        cost = getattr(result, "cost", None)
        time_ns, energy_nj = (cost.time_ns, cost.energy_nj) if cost is not None else (0.0, 0.0)
        return _Answer(entry, Status.OK, head, b"" if data is None else data, time_ns, energy_nj)

    def _pass(self, entry: _Entry, payload: memoryview, path: _PassPath) -> _Answer | None:
        """A pass whose voltages lie inline in the window, as the generic path would run
        it (decode, ``driver.run``: the same checks, the same errors, then the emulator's
        pass) without building a request; None for anything else (staged, malformed,
        a bad tile), which the generic path then answers with its error."""
        if len(payload) < _MVM_REQ_SIZE:
            return None
        tile, source, flags, batch, _, _, _ = m.MVM_REQ.unpack_from(payload)
        info = path.info
        if source or not tile < info.tile_count:  # an unsigned field: >= 0
            return None
        at, region = _MVM_REQ_SIZE, None
        if flags:
            region = _region(payload, flags, info)
            if region is None:
                return None
            at += m.MVM_REGION.size
        inputs, outputs, driven = path.shape(region)
        if len(payload) != at + 4 * batch * inputs:
            return None
        voltages = np.ndarray((batch, inputs), _WIRE_F32, payload, at)
        v = check.pass_voltages(info, voltages, inputs, driven)
        # The currents are computed where the answer goes, after its head: no copy after.
        size = 4 * batch * outputs
        if _PASS_HEAD.size + size > r.SLOT_WINDOW_BYTES:  # more outputs than inputs per vector
            raise _Refused(
                Status.BAD_PAYLOAD,
                f"a pass of {batch} vectors answers {_PASS_HEAD.size + size} bytes; the output "
                f"window holds {r.SLOT_WINDOW_BYTES}",
            )
        host = self._host_room(entry, size) if entry.result_room else None
        if host is None:
            window = self._windows[entry.slot][1][_PASS_HEAD.size : _PASS_HEAD.size + size]
        else:
            window = host  # the host lent memory for it: written there, not in the BAR
        out = np.ndarray((batch, outputs), _WIRE_F32, window) if _IN_PLACE else None
        result = path.run(tile, v, out, region)
        cost = result.cost
        time_ns, energy_nj = cost.time_ns, cost.energy_nj
        head = _PASS_HEAD.pack(result.saturated_outputs, 0, time_ns, energy_nj)
        in_host = host is not None
        if out is not None and result.currents is out:
            return _Answer(entry, Status.OK, head, window, time_ns, energy_nj, True, in_host)
        currents = np.ascontiguousarray(result.currents, _WIRE_F32).data.cast("B")
        if in_host:
            window[:] = currents
            return _Answer(entry, Status.OK, head, window, time_ns, energy_nj, True, True)
        return _Answer(entry, Status.OK, head, currents, time_ns, energy_nj)

    def _complete(self, a: _Answer) -> None:
        """Output window (and host memory), then the completion entry, its phase word
        last."""
        in_window = len(a.head) + (0 if a.in_host else len(a.data))
        if in_window > r.SLOT_WINDOW_BYTES:  # never past the window
            text = f"an answer of {len(a.head) + len(a.data)} bytes does not fit the window"
            a = _Answer(a.entry, Status.INTERNAL, m.encode_error(text))
        while self.cq_tail - self.bar.read32(_CQ_HEAD) >= r.QUEUE_DEPTH:
            time.sleep(50e-6)  # the host has not consumed: never overwrite an entry
        bar, slot = self.bar, a.entry.slot
        if slot < r.QUEUE_DEPTH:  # else a slot this device does not have: no window written
            out = _OUT[slot]
            bar.write_bytes(out, a.head)
            if not a.placed:
                bar.write_bytes(out + len(a.head), a.data)
        slot &= 0xFF_FFFF  # the completion's 24 bits of slot, whatever the submission said
        offset = _CQ[self.cq_tail % r.QUEUE_DEPTH]
        phase = 1 ^ ((self.cq_tail // r.QUEUE_DEPTH) & 1)
        if a.in_host:
            phase |= r.IN_HOST_MEMORY
        # The entry in one copy with its phase bit still the old one (the host, polling
        # that bit, sees nothing new yet), then the phase word alone: the entry is new.
        raw = r.COMPLETION.pack(
            a.entry.cid, a.status, (phase ^ 1) | slot << 8, len(a.head), len(a.data),
            a.time_ns, a.energy_nj,
        )  # fmt: skip
        bar.write_bytes(offset, raw)
        bar.write32(offset + 4, phase | slot << 8)
        self.cq_tail = (self.cq_tail + 1) & 0xFFFF_FFFF
        if bar.read32(_IRQ_ARM):  # the host sleeps: raise the interrupt
            bar.write32(_IRQ_ARM, 0)
            bar.kick(_IRQ_ARM)


def _command(entry: _Entry) -> str:
    """``MVM (opcode 0x22, cid 7)``: a submission as a fault line names it."""
    msg = _MSG.get(entry.opcode)
    name = "unknown" if msg is None else msg.name
    return f"{name} (opcode 0x{entry.opcode:02x}, cid {entry.cid})"


def _kind(mode: int) -> str:
    """What a path that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    return "not a regular file"


def _create(path: str) -> FileBar:
    """A zeroed BAR file of exactly BAR_SIZE bytes, mapped, under a temporary name."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, r.BAR_SIZE)  # before mmap: a page past the end is SIGBUS
    finally:
        os.close(fd)
    return FileBar(tmp)
