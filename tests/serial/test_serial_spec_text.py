"""docs/wire-protocol.md and the code that implements it name the same things.

The spec is normative, but the message and status tables, the HELLO layout, the
error table and the fault settings are also code: these checks fail when one is
changed without the other, when a section reference dangles, or when the spec
points at a test file that does not exist.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sidra.drivers.errors import WIRE_STATUS
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.messages import Msg, Status
from sidra.emulator.firmware.faults import FaultConfig

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "wire-protocol.md").read_text(encoding="utf-8")


def rows(first_cell: str) -> dict[str, str]:
    """Table rows whose first cell matches ``first_cell`` (a regex), by that cell."""
    found = {}
    for line in SPEC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(first_cell, cells[0]):
            found[cells[0]] = line
    return found


@pytest.mark.parametrize("msg", list(Msg), ids=lambda msg: msg.name)
def test_every_message_is_in_the_message_table(msg: Msg) -> None:
    row = rows(r"0x[0-9a-f]{2}").get(f"0x{msg:02x}")
    assert row is not None and f"| {msg.name} |" in row


@pytest.mark.parametrize("status", list(Status), ids=lambda status: status.name)
def test_every_status_is_in_the_status_table(status: Status) -> None:
    row = rows(r"0x[0-9a-f]{4}").get(f"0x{status:04x}")
    assert row is not None and f"| {status.name} |" in row


@pytest.mark.parametrize(("exception", "name"), WIRE_STATUS[:-1])
def test_status_table_names_the_exception_the_host_raises(exception: type, name: str) -> None:
    row = rows(r"0x[0-9a-f]{4}")[f"0x{Status[name]:04x}"]
    assert row.rstrip(" |").split("|")[-1].strip().startswith(exception.__name__)


def test_hello_layout_sizes_match_the_codec() -> None:
    assert m.HELLO_FIXED.size == 53 and "a fixed part (53 B)" in SPEC
    assert m.HELLO_LIMITS.size == 48 and "timing\nblock (48 B)" in SPEC
    assert m.HELLO_REQ.size == 12 and "Request payload (12 B;" in SPEC
    for name in ("board_max_payload", "cache_depth", "mvm_pass_ns", "board_power_w"):
        assert f"| {name} |" in SPEC


def test_every_fault_setting_is_documented_with_a_unit() -> None:
    table = rows(r"`\w+`")
    for field in dataclasses.fields(FaultConfig):
        row = table.get(f"`{field.name}`")
        assert row is not None, field.name
        unit = row.split("|")[2].strip()
        assert re.search(r"probability|\bs\b|frames|integer", unit), (field.name, unit)


def test_named_test_files_exist() -> None:
    named = set(re.findall(r"tests/[\w/]+\.py", SPEC))
    assert named, "the spec names its tests"
    for path in named:
        assert (ROOT / path).is_file(), path


def test_sections_are_numbered_in_order_and_references_resolve() -> None:
    headings = re.findall(r"^(##+) (\d+(?:\.\d+)?)\.? ", SPEC, flags=re.MULTILINE)
    tops = [int(n) for level, n in headings if level == "##"]
    assert tops == list(range(1, len(tops) + 1))
    subs: dict[int, list[int]] = {}
    for level, number in headings:
        if level == "###":
            top, sub = map(int, number.split("."))
            subs.setdefault(top, []).append(sub)
    for top, numbers in subs.items():
        assert numbers == list(range(1, len(numbers) + 1)), top
    known = {n for _, n in headings}
    for ref in re.findall(r"§(\d+(?:\.\d+)?)", SPEC):
        assert ref in known, f"§{ref} names no section"
