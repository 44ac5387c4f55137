"""``sidra bench pcie --calls``: Python-level calls per single-vector MVM, on each end.

Timings on a shared 2-vCPU machine move by 2× from one hour to the next; the
number of interpreted calls a round trip makes does not, and it is what the
round trip's cost mostly is (a bare ping-pong between the two processes takes
1.5 µs). This counts them deterministically: the virtual PCIe board runs in
this process on the same BAR file, its device loop stepped once by each
doorbell the host writes (:class:`LockstepBar`), and ``sys.setprofile``
counts every ``call`` (Python function) and ``c_call`` (builtin) event, on
the host's side and on the board's separately.

The host's calls are split at the doorbell and at its first look at the
completion: those before the doorbell and after the answer is seen lie on the
round trip's path; those in between (``host_while_board_calls``: the presence
check, the deadline, learning the last completion time) run, across
processes, while the board works. ``critical_path_calls`` is the host's before
and after plus the board's.

What the counts leave out: the host's waiting (in lockstep the completion is
there at its first look; across processes a spinning host reads the phase
word a few more times) and the board's idle polls between commands.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from sidra.cli.bench_timing import times_s
from sidra.drivers import open_board
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import FileBar
from sidra.drivers.pcie.driver import PcieDriver
from sidra.emulator import preset
from sidra.emulator.pcie.device import PcieDevice
from sidra.emulator.pcie.serve import memory_dir

__all__ = ["CallCounter", "LockstepBar", "call_counts"]

_STEPPED_BY = frozenset({r.OFFSET["SQ_TAIL"], r.OFFSET["CONTROL"]})
"""Host writes after which the board's device loop takes one step: doorbells, ring resets."""


HOST_BEFORE, HOST_WHILE, HOST_AFTER, BOARD = "host_before", "host_while", "host_after", "board"
"""The sides calls are counted on: the host before its doorbell, between the doorbell and
its first look at the completion, after that look; the board."""


_HARNESS = frozenset({"LockstepBar.write32", "LockstepBar.read32", "_is_phase_word"})
"""This module's own functions, which the counts leave out (the accesses they make are
the BAR's, and counted)."""
_OWN_LAMBDAS = "call_counts.<locals>"
"""The calls this module's timing wraps each MVM in (not the MVM's own)."""


@dataclass
class CallCounter:
    """``sys.setprofile`` hook: call and c_call events, per side (HOST_BEFORE, ...)."""

    side: str = HOST_BEFORE
    calls: Counter[str] = field(default_factory=Counter)
    by_name: dict[str, Counter[str]] = field(default_factory=dict)

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_code.co_qualname
            if name in _HARNESS or name.startswith(_OWN_LAMBDAS):
                return
        elif event == "c_call":
            name = getattr(arg, "__qualname__", repr(arg))
        else:
            return
        self.calls[self.side] += 1
        self.by_name.setdefault(self.side, Counter())[name] += 1


class LockstepBar(FileBar):
    """The host's BAR, whose doorbell and CONTROL writes run one step of ``device``'s loop
    at once, in this thread: a round trip without waiting, counted call by call."""

    device: PcieDevice | None = None
    counter: CallCounter | None = None

    def write32(self, offset: int, value: int) -> None:
        super().write32(offset, value)
        if offset in _STEPPED_BY and self.device is not None:
            counter = self.counter
            if counter is not None:
                counter.side = BOARD
            self.device.step()
            if counter is not None:
                counter.side = HOST_WHILE

    def read32(self, offset: int) -> int:
        counter = self.counter
        if counter is not None and counter.side == HOST_WHILE and _is_phase_word(offset):
            counter.side = HOST_AFTER  # the host looks at the completion: the answer is in
        return super().read32(offset)


def _is_phase_word(offset: int) -> bool:
    return r.CQ_OFFSET <= offset < r.WINDOWS_OFFSET and offset % r.COMPLETION.size == 4


def call_counts(
    preset_name: str = "ideal", mvms: int = 20, seed: int = 0, top: int = 12
) -> dict[str, Any]:
    """Calls per single-vector MVM (1 × rows) through the PCIe driver and the virtual
    board, each side's counted apart, and through the in-process emulator; with the
    lockstep round trip's fastest time (µs: one process, no waiting, so the sum of
    both ends' work) and the ``top`` most frequent callees of each side."""
    profile = preset(preset_name)
    counter = CallCounter()
    with tempfile.TemporaryDirectory(prefix="sidra-calls-", dir=memory_dir()) as tmp:
        path = os.path.join(tmp, "bar0")
        device = PcieDevice(path, profile, seed)
        try:
            device.publish()

            def opener() -> LockstepBar:
                bar = LockstepBar(path)
                bar.device, bar.counter = device, counter
                return bar

            with (
                PcieDriver(opener) as pcie,
                open_board(f"emu://?preset={preset_name}&seed={seed}") as local,
            ):
                info = pcie.info
                rng = np.random.default_rng(seed)
                g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols))
                v_max = info.read_voltage_max_v
                one = rng.uniform(-v_max / 4, v_max / 4, (1, info.rows)).astype(np.float32)
                for board in (pcie, local):
                    board.program(0, g.astype(np.float32))
                    for _ in range(50):  # warm-up: learned service times, caches
                        board.mvm(0, one)
                counted = _count(counter, lambda: pcie.mvm(0, one), mvms)
                local_counter = CallCounter()
                _count(local_counter, lambda: local.mvm(0, one), mvms)
                fastest_s = min(times_s(lambda: pcie.mvm(0, one), 2000))
                local_fastest_s = min(times_s(lambda: local.mvm(0, one), 2000))
        finally:
            device.close()
    per = {
        side: counted.calls[side] / mvms for side in (HOST_BEFORE, HOST_WHILE, HOST_AFTER, BOARD)
    }
    host = per[HOST_BEFORE] + per[HOST_WHILE] + per[HOST_AFTER]
    return {
        "host_calls": host,
        "board_calls": per[BOARD],
        "round_trip_calls": host + per[BOARD],
        "critical_path_calls": per[HOST_BEFORE] + per[BOARD] + per[HOST_AFTER],
        "host_before_doorbell_calls": per[HOST_BEFORE],
        "host_while_board_calls": per[HOST_WHILE],
        "host_after_answer_calls": per[HOST_AFTER],
        "inproc_calls": local_counter.calls[HOST_BEFORE] / mvms,
        "lockstep_min_us": round(1e6 * fastest_s, 1),
        "inproc_min_us": round(1e6 * local_fastest_s, 1),
        "top_calls": {
            side: {name: n / mvms for name, n in names.most_common(top) if n > 0}
            for side, names in counted.by_name.items()
        },
        "preset": preset_name,
        "mvms": mvms,
    }


def _count(counter: CallCounter, call: Any, repeats: int) -> CallCounter:
    for _ in range(repeats):
        counter.side = HOST_BEFORE
        sys.setprofile(counter)
        call()
        sys.setprofile(None)
        counter.calls[counter.side] -= 1  # the setprofile(None) call itself
        counter.by_name[counter.side]["setprofile"] -= 1
    return counter
