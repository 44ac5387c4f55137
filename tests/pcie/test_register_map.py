"""The BAR0 map: docs/pcie-register-map.md is fresh, and the map itself is sound.

Soundness is what a driver and a board both rely on without checking at run
time: aligned single-access registers, regions that never overlap, everything
inside a power-of-two BAR, and data windows that hold the largest payloads.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sidra.drivers.pcie import register_doc
from sidra.drivers.pcie import registers as r
from sidra.drivers.wire import messages as m

DOC = Path(__file__).resolve().parents[2] / "docs" / "pcie-register-map.md"
FLOAT32 = 4


def _regions() -> list[tuple[str, int, int]]:
    """(name, offset, size) of every register and memory region of BAR0."""
    regions = [(reg.name, reg.offset, reg.bits // 8) for reg in r.REGISTERS]
    regions += [(w.name, w.offset, w.size) for w in r.WINDOWS]
    return sorted(regions, key=lambda region: region[1])


def _largest_wire_head() -> int:
    """Bytes of the largest fixed request or response head of docs/wire-protocol.md §6."""
    heads = [
        value.size
        for name, value in vars(m).items()
        if isinstance(value, struct.Struct) and name.endswith(("_REQ", "_RESP", "_HEAD"))
    ]
    assert heads, "no wire heads found in sidra.drivers.wire.messages"
    return max(heads)


def test_doc_is_fresh() -> None:
    assert DOC.read_text(encoding="utf-8") == register_doc.render(), (
        f"{DOC.name} is stale: regenerate it with `{register_doc.COMMAND}`"
    )


def test_module_command_prints_the_doc() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sidra.drivers.pcie.register_doc"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert out == register_doc.render()


def test_doc_follows_the_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    # The freshness test can fail: a changed register changes the rendered doc.
    changed = dataclasses.replace(r.REGISTERS[0], description="changed")
    monkeypatch.setattr(r, "REGISTERS", (changed, *r.REGISTERS[1:]))
    assert "| changed |" in register_doc.render()
    assert register_doc.render() != DOC.read_text(encoding="utf-8")


def test_every_register_is_in_the_doc() -> None:
    text = register_doc.render()
    for reg in r.REGISTERS:
        assert f"| `0x{reg.offset:04X}` | `{reg.name}` | {reg.bits} |" in text


@pytest.mark.parametrize("register", r.REGISTERS, ids=lambda reg: reg.name)
def test_register_is_one_aligned_access(register: r.Register) -> None:
    assert register.bits in (32, 64), register
    assert register.offset % (register.bits // 8) == 0, f"{register.name} is not aligned"
    assert register.access in ("RO", "WO", "RW"), register
    assert register.kind in {32: ("u32",), 64: ("u64", "f64")}[register.bits], register
    assert r.OFFSET[register.name] == register.offset


def test_names_are_unique() -> None:
    names = [name for name, _, _ in _regions()]
    assert len(names) == len(set(names)), names


def test_regions_do_not_overlap() -> None:
    regions = _regions()
    for (name_a, offset_a, size_a), (name_b, offset_b, _) in itertools.pairwise(regions):
        assert size_a > 0, name_a
        assert offset_a + size_a <= offset_b, (
            f"{name_a} [{offset_a:#x}, {offset_a + size_a:#x}) overlaps {name_b} at {offset_b:#x}"
        )


def test_everything_lies_within_the_bar() -> None:
    name, offset, size = max(_regions(), key=lambda region: region[1] + region[2])
    assert offset + size <= r.BAR_SIZE, f"{name} ends at {offset + size:#x} > {r.BAR_SIZE:#x}"


def test_bar_size_is_a_power_of_two() -> None:
    assert r.BAR_SIZE >= 4096 and r.BAR_SIZE & (r.BAR_SIZE - 1) == 0, r.BAR_SIZE


def test_rings_hold_queue_depth_entries() -> None:
    assert r.QUEUE_DEPTH >= 8  # several commands in flight (issue: queue depth >= 8)
    by_name = {w.name: w for w in r.WINDOWS}
    assert by_name["SQ"].size == r.QUEUE_DEPTH * r.SUBMISSION.size
    assert by_name["CQ"].size == r.QUEUE_DEPTH * r.COMPLETION.size
    assert by_name["IDENTITY"].size == len(r.IDENTITY_STRINGS) * r.IDENTITY_BYTES
    # Entries never straddle a cache line boundary when the ring base is aligned.
    assert r.SQ_OFFSET % r.SUBMISSION.size == 0 and r.CQ_OFFSET % r.COMPLETION.size == 0


def test_slot_windows_match_their_formula() -> None:
    for slot in range(r.QUEUE_DEPTH):
        by_name = {w.name: w for w in r.WINDOWS}
        assert by_name[f"IN[{slot}]"].offset == r.in_window(slot)
        assert by_name[f"OUT[{slot}]"].offset == r.out_window(slot)
        assert by_name[f"IN[{slot}]"].size == by_name[f"OUT[{slot}]"].size == r.SLOT_WINDOW_BYTES


@pytest.mark.parametrize(
    ("what", "array_bytes"),
    [("1024 x 256 float32 batch", 1024 * 256 * FLOAT32), ("256 x 256 tile", 256 * 256 * FLOAT32)],
)
def test_windows_hold_the_largest_payloads(what: str, array_bytes: int) -> None:
    needed = array_bytes + _largest_wire_head()
    assert needed <= r.SLOT_WINDOW_BYTES, f"a {what} needs {needed} bytes"


@pytest.mark.parametrize("layout", [r.SUBMISSION, r.COMPLETION], ids=["submission", "completion"])
def test_entries_are_whole_fractions_of_a_cache_line(layout: struct.Struct) -> None:
    assert layout.size in (32, 64)


def test_identity_values() -> None:
    assert r.MAGIC.to_bytes(4, "little") == b"SDRA"
    assert r.BOARD_ID.to_bytes(4, "little") == b"S1\0\0"  # as the map says it reads
    assert r.VERSION >> 16 >= 1
    reg = {reg.name: reg for reg in r.REGISTERS}
    assert reg["MAGIC"].offset == 0  # the first thing a host reads
    last = max(r.REGISTERS, key=lambda x: x.offset)
    assert last.offset + last.bits // 8 <= r.IDENTITY_OFFSET
