"""A board whose responses are laid out otherwise than docs/wire-protocol.md says (its
firmware being brought up): the host raises BoardFault naming the message and what came,
never a struct.error, a numpy reshape error or an array of another shape. Over the
serial link and over PCIe (the generic path; a pass's own path checks its sizes itself).

The virtual board's firmware stands in for the faulty one at the lowest layer: its
packing of one response kind is changed, in this process, for the test's duration (the
virtual PCIe board runs in a thread of this process here, not in its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from pcie_in_process import pcie_board_in_thread

from sidra.drivers import Board, BoardFault, BoardUnavailable, open_board
from sidra.drivers.pcie import registers
from sidra.drivers.wire import operations as ops
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.pcie import device as pcie_device
from sidra.emulator.pcie.device import PcieDevice


@contextmanager
def _serial_board() -> Iterator[Board]:
    with serve_virtual_board(preset("ideal"), 3) as server, open_board(server.url) as board:
        yield board


@contextmanager
def _pcie_board() -> Iterator[Board]:
    with pcie_board_in_thread() as (board, _):
        yield board


TRANSPORTS = {"serial": _serial_board, "pcie": _pcie_board}


_PACK_PASS = ops._PassEntry.pack_result
_PACK_READ = ops.ReadConductanceEntry.pack_result
_PACK_PROGRAM = ops.ProgramEntry.pack_result
_PCIE_PASS = PcieDevice._pass
"""The right versions, kept before a test replaces one."""


def _one_column_short(self: Any, result: Any) -> tuple[bytes, Any]:
    head, _ = _PACK_PASS(self, result)
    return head, np.asarray(result.currents, "<f4")[:, :-1].tobytes()


def _four_bytes_short(self: Any, result: Any) -> tuple[bytes, Any]:
    head, data = _PACK_READ(self, result)
    return head, data[:-4]


def _head_truncated(self: Any, result: Any) -> tuple[bytes, Any]:
    head, data = _PACK_PROGRAM(self, result)
    return head[:-3], data


def _pcie_pass_short(self: Any, entry: Any, payload: Any, path: Any) -> Any:
    """A PCIe pass is computed into its window, not packed: its answer loses 4 bytes."""
    answer = _PCIE_PASS(self, entry, payload, path)
    return dataclasses.replace(answer, data=bytes(answer.data)[:-4], placed=False)


def _mvm(board: Board) -> Any:
    return board.mvm(0, np.full((2, 256), 0.1, np.float32))


CASES: dict[tuple[str, str], tuple[Any, str, Callable[..., Any], Callable[[Board], Any], str]] = {
    # (transport, what the board gets wrong): (class, method, its wrong version, call, says)
    ("serial", "mvm-width"): (
        ops._PassEntry, "pack_result", _one_column_short, _mvm,
        "the board's MVM response holds currents of shape [2, 255], expected [2, 256]",
    ),
    ("pcie", "mvm-width"): (
        PcieDevice, "_pass", _pcie_pass_short, _mvm,
        "MVM: the board answered a 24-byte head and 2044 result bytes; a pass of 2 vectors "
        "is 24 and 2048",
    ),
    **{
        (transport, "read-short"): (
            ops.ReadConductanceEntry, "pack_result", _four_bytes_short,
            lambda board: board.read_conductance(0),
            "the board's READ_CONDUCTANCE response is not laid out as docs/wire-protocol.md "
            "says (16 head bytes, 262140 result bytes): cannot reshape",
        )
        for transport in TRANSPORTS
    },
    **{
        (transport, "program-head"): (
            ops.ProgramEntry, "pack_result", _head_truncated,
            lambda board: board.program(0, np.full((4, 4), 10.0, np.float32)),
            "the board's PROGRAM_COMMIT response is not laid out as docs/wire-protocol.md says",
        )
        for transport in TRANSPORTS
    },
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids="-".join)
def test_a_response_of_another_layout_is_a_board_fault(
    monkeypatch: pytest.MonkeyPatch, case: tuple[str, str]
) -> None:
    owner, method, wrong, call, says = CASES[case]
    with TRANSPORTS[case[0]]() as board:
        monkeypatch.setattr(owner, method, wrong)
        with pytest.raises(BoardFault) as caught:
            call(board)
        assert says in str(caught.value)
        monkeypatch.undo()  # the board answers as it should again, on the same link
        assert board.mvm(0, np.full((1, 256), 0.1, np.float32)).currents.shape == (1, 256)


class _Oversized:
    """The register map as the device uses it, but each completion it writes claims a
    result as large as the output window, past its end with the head."""

    def __getattr__(self, name: str) -> Any:
        return getattr(registers, name)

    class COMPLETION:  # noqa: N801  (stands in for the struct of that name)
        size = registers.COMPLETION.size

        @staticmethod
        def pack(*fields: Any) -> bytes:
            cid, status, phase_slot, head_len, _, time_ns, energy_nj = fields
            result_len = registers.SLOT_WINDOW_BYTES
            return registers.COMPLETION.pack(
                cid, status, phase_slot, head_len, result_len, time_ns, energy_nj
            )


@pytest.mark.parametrize(
    "call",
    [lambda board: board.read_conductance(0), _mvm],
    ids=["rings", "single-command path"],
)
def test_a_pcie_completion_past_its_window_drops_the_link_until_it_is_back(
    monkeypatch: pytest.MonkeyPatch, call: Callable[[Board], Any]
) -> None:
    """Read on, the answer would be another slot's bytes: BoardUnavailable naming the
    sizes, and the next call, the board right again, re-attaches and is answered."""
    with _pcie_board() as board:
        monkeypatch.setattr(pcie_device, "r", _Oversized())
        with pytest.raises(BoardUnavailable) as caught:
            call(board)
        assert "result bytes; the slot's output window holds" in str(caught.value)
        assert not board.link_up
        monkeypatch.undo()
        assert board.mvm(0, np.full((1, 256), 0.1, np.float32)).currents.shape == (1, 256)
        assert board.link_up
