"""docs/wire-protocol.md and the code that implements it name the same things.

The spec is normative, but the message and status tables, the HELLO layout, the
error table and the fault settings are also code: these checks fail when one is
changed without the other, when a section reference dangles, or when the spec
points at a test file that does not exist.
"""

from __future__ import annotations

import dataclasses
import re
import struct
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


# -- §6 payload layouts, §3.1 HELLO offsets, §5.3 heads, §8.2 caps, §4.5 timeouts, §11 -----

_CODE = {"u8": "B", "i8": "b", "u16": "H", "u32": "I", "u64": "Q", "f32": "f", "f64": "d"}


def _layout(cell: str) -> str:
    """The struct codes of the first backticked ``name type, ...`` list in a table cell."""
    for group in re.findall(r"`([^`]*)`", cell):
        types = re.findall(r"\w+ (u8|i8|u16|u32|u64|f32|f64)\b", group)
        if types:
            return "".join(_CODE[t] for t in types)
    return ""


def _codes(struct_: object, skip: int = 0) -> str:
    """A codec's field codes after its first ``skip`` fields, padding read as u8."""
    codes = re.sub(r"[<>=!]", "", struct_.format).replace("x", "B")  # type: ignore[attr-defined]
    return codes[skip:]


REGION_FIELDS = len(m.REGION_REQ.format) - 1
# (message, request codec or None, response codec or None, extra response bytes: the cost)
LAYOUTS = [
    (Msg.HELLO, m.HELLO_REQ, None, 0),
    (Msg.GET_STATS, None, m.STATS_RESP, 0),
    (Msg.RESULT_READ, m.RESULT_READ_REQ, None, 0),
    (Msg.STAGE_BEGIN, m.STAGE_BEGIN_REQ, m.STAGE_BEGIN_RESP, 0),
    (Msg.STAGE_DATA, m.STAGE_DATA_HEAD, None, 0),
    (Msg.STAGE_VERIFY, m.STAGE_VERIFY_REQ, None, 0),
    (Msg.PROGRAM_COMMIT, m.PROGRAM_REQ, m.PROGRAM_RESP, m.COST.size),
    (Msg.READ_CONDUCTANCE, m.REGION_REQ, None, 0),
    (Msg.MVM, m.MVM_REQ, m.MVM_RESP, m.COST.size),
    (Msg.PERTURB, m.PERTURB_REQ, m.PERTURB_RESP, m.COST.size),
    (Msg.RESTORE, m.REGION_REQ, None, 0),
    (Msg.READ_WRITE_COUNTS, m.REGION_REQ, m.COUNTS_RESP, 0),
    (Msg.CALIBRATE, m.CALIBRATE_REQ, m.CALIBRATE_RESP, m.COST.size),
    (Msg.ADVANCE_CLOCK, m.CLOCK, m.CLOCK, 0),
]


@pytest.mark.parametrize(
    ("msg", "request_codec", "response_codec", "cost"),
    LAYOUTS,
    ids=lambda x: getattr(x, "name", ""),
)
def test_message_table_sizes_and_field_types_match_the_codecs(
    msg: Msg, request_codec: object, response_codec: object, cost: int
) -> None:
    row = rows(r"0x[0-9a-f]{2}")[f"0x{msg:02x}"]
    request, response = (c.strip() for c in row.strip().strip("|").split("|")[2:4])
    if request_codec is not None and "§3.1" not in request:
        size = request_codec.size  # type: ignore[attr-defined]
        assert re.match(rf"{size} B\b", request), (request, size)
        region = re.match(r"\d+ B:? region", request) is not None
        expected = _codes(request_codec, REGION_FIELDS if region else 0)
        assert _layout(request) == expected or request_codec is m.REGION_REQ, (request, expected)
    if response_codec is not None:
        size = response_codec.size + cost  # type: ignore[attr-defined]
        if msg is not Msg.READ_WRITE_COUNTS:  # its head is followed by a result block
            assert re.match(rf"{size} B\b", response), (response, size)
        assert _layout(response) == _codes(response_codec), (response, response_codec)
        if cost:
            assert "`, cost" in response, response


def test_link_stats_counters_are_listed_in_order() -> None:
    row = rows(r"0x[0-9a-f]{2}")[f"0x{Msg.GET_LINK_STATS:02x}"]
    assert f"{m.LINK_STATS_RESP.size} B" in row
    names = re.findall(r"`([^`]*)`", row)[0]
    assert [n.strip() for n in names.split(",")] == list(m.LINK_STATS_FIELDS)


def test_header_region_and_cost_formats_are_the_codecs() -> None:
    from sidra.drivers.wire.framing import HEADER

    assert f"`struct` format `{HEADER.format}`" in SPEC
    assert f"Region fields ({m.REGION_REQ.size} B, `{m.REGION_REQ.format}`)" in SPEC
    assert f"Cost ({m.COST.size} B, `{m.COST.format}`)" in SPEC


def test_hello_response_offsets_and_types_match_the_codec() -> None:
    """Every row of the HELLO response table: offset and type as HELLO_FIXED,
    HELLO_LIMITS and HELLO_COMMAND_TIMES lay them out (the bauds array and the strings
    between them)."""
    section = SPEC.split("### 3.1")[1].split("### 3.2")[0]
    table = section.split("Response payload")[1]
    fixed, limits = [], []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[2] not in _CODE:
            continue
        if re.fullmatch(r"\d+", cells[0]):
            fixed.append((int(cells[0]), _CODE[cells[2]]))
        elif match := re.fullmatch(r"… \+ (\d+)", cells[0]):
            limits.append((int(match[1]), _CODE[cells[2]]))
    # The command-times block follows the limits and timing block: one run of offsets.
    after = struct.Struct("<" + _codes(m.HELLO_LIMITS) + _codes(m.HELLO_COMMAND_TIMES))
    for rows_, codec in ((fixed, m.HELLO_FIXED), (limits, after)):
        offset, expected = 0, []
        for code in re.findall(r"\d*[A-Za-z]", _codes(codec)):
            count = int(code[:-1] or 1)
            for _ in range(count):
                expected.append((offset, code[-1]))
                offset += struct.calcsize("<" + code[-1])
        assert rows_ == expected


def test_result_block_heads_match_the_wire_entries() -> None:
    from sidra.drivers.wire.operations import ENTRIES

    heads = {msg.name: entry.result_at for entry in ENTRIES for msg in entry.messages}
    text = re.search(r"`head` is the size of (.*?)\.\n", SPEC, re.S)
    assert text is not None
    stated = dict(
        (name, int(size))
        for size, names in re.findall(r"(\d+) for\s+([A-Z_]+(?: and [A-Z_]+)?)", text[1])
        for name in names.split(" and ")
    )
    assert stated == {name: at for name, at in heads.items() if at is not None} | {"GET_PROFILE": 0}


def test_error_payload_caps_are_the_codec_limits() -> None:
    caps = (
        f"`field` at most\n{m.ERROR_FIELD_LIMIT} bytes, `value` at most "
        f"{m.ERROR_VALUE_LIMIT} bytes, `text` at most {m.ERROR_TEXT_LIMIT} bytes"
    )
    assert caps in SPEC


def test_timeout_constants_are_the_reference_host_values() -> None:
    from sidra.drivers.serial.link import LinkSettings
    from sidra.drivers.wire.device_times import CALIBRATE_PASSES, REFERENCE_TIMES, STAGE_S_PER_BYTE
    from sidra.server.link_watch import PROBE_INTERVAL_S

    settings = LinkSettings()
    assert f"`T_base = {settings.timeout_s:g} s`" in SPEC
    assert f"`retries = {settings.retries}`" in SPEC
    assert f"default {settings.baud:,} Bd".replace(",", " ") in SPEC
    t = REFERENCE_TIMES
    assert f"{t.program_cell_s * 1e6:g} µs per programmed cell" in SPEC
    assert f"{t.pass_cell_s * 1e9:g} ns per\ncell per analog pass" in SPEC
    assert f"{t.cell_s * 1e6:g} µs per cell for" in SPEC
    assert f"{CALIBRATE_PASSES} passes for CALIBRATE" in SPEC
    assert f"{STAGE_S_PER_BYTE * 1e9:g} ns per staged byte" in SPEC
    assert f"probes the board every {PROBE_INTERVAL_S:g} s" in SPEC


def test_virtual_board_memory_figures_follow_from_its_defaults() -> None:
    from sidra.drivers.wire.framing import MIN_PAYLOAD
    from sidra.emulator.firmware.device import DEVICE_MAX_PAYLOAD, RESPONSE_CACHE

    def frame(p: int) -> int:
        return 16 + p + (16 + p) // 254 + 2

    def spaced(n: int) -> str:
        return f"{n:,}".replace(",", " ")

    big, p = frame(DEVICE_MAX_PAYLOAD), spaced(DEVICE_MAX_PAYLOAD)
    assert f"`P` = {p} (`F` = {spaced(big)} B)" in SPEC
    assert (
        f"{RESPONSE_CACHE} cached\nresponses take **{RESPONSE_CACHE} × {spaced(big + 8)} B" in SPEC
    )
    small = frame(MIN_PAYLOAD)
    assert f"{small} B for `P` = {MIN_PAYLOAD}, {spaced(big)} B for `P` = {p}" in SPEC
    # §11.2: 32 x 32 cells, 256-byte payloads, 4 cached responses, a one-tile stage.
    cache, stage = 4 * (small + 8), 4 * 32 * 32
    total = small + small + cache + stage + max(4 * 32 * 32, stage * 32 // 32)
    assert f"| receive, `F` = 16 + {MIN_PAYLOAD} + 1 + 2 | {small} |" in SPEC
    assert f"| response cache, 4 × ({small} + 8) | {spaced(cache)} |" in SPEC
    assert f"| **total** | **{spaced(total)} (≈ {total / 1024:.1f} KiB)** |" in SPEC
