"""docs/pcie-register-map.md, generated from :mod:`sidra.drivers.pcie.registers`.

Run ``python -m sidra.drivers.pcie.register_doc > docs/pcie-register-map.md``
after changing the register map; tests/pcie/test_register_map.py fails while
the committed file differs from :func:`render`.

The status and control bits are documented by attribute docstrings, which
Python drops at run time, so they are read from the module's source (the
same file that defines the values; :mod:`sidra.drivers.attribute_docs`)
rather than written a second time here.
"""

from __future__ import annotations

import enum
import inspect
import re
import struct
from collections.abc import Iterable

from sidra.drivers.attribute_docs import attribute_docs
from sidra.drivers.pcie import registers as r

__all__ = ["COMMAND", "render"]

COMMAND = "python -m sidra.drivers.pcie.register_doc > docs/pcie-register-map.md"
"""The command that regenerates the document."""

_SLOT_NAME = re.compile(r"(IN|OUT)\[(\d+)\]")
_TYPE_NAMES = {"H": "u16", "I": "u32", "Q": "u64", "d": "f64", "B": "u8", "x": "pad"}


def render() -> str:
    """The whole register map as Markdown (ends with one newline)."""
    sections = [
        _header(),
        _summary(),
        _layout(),
        _registers(),
        _flags("STATUS bits", r.Status),
        _flags("CONTROL bits", r.Control),
        _identity(),
        _entry("Submission entry", "SUBMISSION", r.SUBMISSION_FIELDS),
        _entry("Completion entry", "COMPLETION", r.COMPLETION_FIELDS),
        _windows(),
        _about(),
    ]
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


def _header() -> str:
    return (
        "# PCIe BAR0 register map\n\n"
        "<!-- Generated from drivers/pcie/registers.py; do not edit. Regenerate with:\n"
        f"     {COMMAND}\n"
        "     tests/pcie/test_register_map.py fails while this file is stale. -->\n\n"
        "Everything is little-endian. Registers are accessed only as single aligned "
        "32- or 64-bit loads and stores; the identity strings, rings and data windows "
        "are plain memory, bulk-copied. How to map BAR0 and bring up a board: "
        "[pcie.md](pcie.md)."
    )


def _summary() -> str:
    major, minor = r.VERSION >> 16, r.VERSION & 0xFFFF
    rows = [
        ("BAR0 size", f"{r.BAR_SIZE} bytes ({_size(r.BAR_SIZE)}, a power of two)"),
        ("MAGIC", f"`{r.MAGIC:#010x}` ({_ascii(r.MAGIC, 4)!r} as little-endian bytes)"),
        ("VERSION", f"`{r.VERSION:#010x}` (major {major}, minor {minor}; a host refuses "
         "another major)"),
        ("BOARD_ID", f"`{r.BOARD_ID:#06x}` ({_ascii(r.BOARD_ID, 2)!r} as little-endian bytes; "
         "SIDRA analog crossbar boards)"),
        ("Queue depth", f"{r.QUEUE_DEPTH} entries per ring laid out; a board reports the "
         f"entries it uses in QUEUE_DEPTH, 1 .. {r.QUEUE_DEPTH} (a SIDRA board: "
         f"{r.QUEUE_DEPTH})"),
        ("Slot window", f"{r.SLOT_WINDOW_BYTES} bytes ({_size(r.SLOT_WINDOW_BYTES)}) "
         "per input and per output window"),
    ]  # fmt: skip
    return "## Summary\n\n" + _table(("Item", "Value"), rows)


def _layout() -> str:
    last = r.REGISTERS[-1]
    regions = [("registers", 0, last.offset + last.bits // 8)]
    regions += [(w.name, w.offset, w.size) for w in r.WINDOWS if not _SLOT_NAME.fullmatch(w.name)]
    slots = [w for w in r.WINDOWS if _SLOT_NAME.fullmatch(w.name)]
    if slots:
        end = max(w.offset + w.size for w in slots)
        regions.append(("slot windows", slots[0].offset, end - slots[0].offset))
    rows = [(f"`{_hex(o)}`", f"`{_hex(o + n - 1)}`", name, _size(n)) for name, o, n in regions]
    return "## Layout\n\n" + _table(("Start", "End", "Region", "Size"), rows)


def _registers() -> str:
    rows = [
        (f"`{_hex(reg.offset)}`", f"`{reg.name}`", f"{reg.bits}", reg.access, reg.kind,
         reg.unit or "–", reg.description)
        for reg in r.REGISTERS
    ]  # fmt: skip
    return (
        "## Registers\n\n"
        "Width is the size of the one access, bits. Access: RO the device writes, "
        "WO the host writes, RW both. An `f64` register holds an IEEE-754 double's "
        "bit pattern, read as one 64-bit load.\n\n"
        + _table(("Offset", "Name", "Width", "Access", "Type", "Unit", "Description"), rows)
    )


def _flags(title: str, flags: type[enum.IntFlag]) -> str:
    notes = attribute_docs(flags)
    rows = [(f"`{m.value:#x}`", f"`{m.name}`", notes.get(m.name or "", "")) for m in flags]
    return f"## {title}\n\n{_doc(flags)}\n\n" + _table(("Bit", "Name", "Meaning"), rows)


def _identity() -> str:
    rows = [
        (f"`{_hex(r.IDENTITY_OFFSET + i * r.IDENTITY_BYTES)}`", f"`{name}`",
         f"{r.IDENTITY_BYTES}")
        for i, name in enumerate(r.IDENTITY_STRINGS)
    ]  # fmt: skip
    return (
        "## Identity strings\n\nUTF-8, NUL-padded, read by the host after MAGIC, "
        "VERSION and BOARD_ID check out. `serial_number` MUST be non-empty, unique among "
        "boards and the same across boots and firmware updates (docs/wire-protocol.md "
        "§3.5): a host refuses a board without one. `emulator_preset` is empty on "
        "hardware.\n\n" + _table(("Offset", "String", "Bytes"), rows)
    )


def _entry(title: str, name: str, fields: Iterable[tuple[str, str, str]]) -> str:
    layout: struct.Struct = getattr(r, name)
    rows, fmt = [], "<"
    for field, code, meaning in fields:
        offset = struct.calcsize(fmt)
        fmt += code
        size = struct.calcsize(fmt) - offset
        rows.append((f"`{_hex(offset, 2)}`", f"{size}", _type_name(code), f"`{field}`", meaning))
    return (
        f"## {title} ({layout.size} bytes, struct `{layout.format}`)\n\n"
        + attribute_docs(r)[name]
        + "\n\n"
        + _table(("Offset", "Bytes", "Type", "Field", "Meaning"), rows)
    )


def _windows() -> str:
    fixed = [w for w in r.WINDOWS if not _SLOT_NAME.fullmatch(w.name)]
    rows = [(f"`{_hex(w.offset)}`", _size(w.size), w.name, w.writer, w.description) for w in fixed]
    slots = sorted({int(m.group(2)) for w in r.WINDOWS if (m := _SLOT_NAME.fullmatch(w.name))})
    size = r.SLOT_WINDOW_BYTES
    formula = (
        f"\n\nSlot *i* (0 ≤ *i* < {len(slots)}): `IN[i]` at `{_hex(r.WINDOWS_OFFSET)} + i × "
        f"{_hex(2 * size)}` (host writes the request payload: head, then the array inline), "
        f"`OUT[i]` at `IN[i] + {_hex(size)}` (device writes the response head, then the "
        f"result array, unless the submission lent it room in host memory); each {size} "
        f"bytes ({_size(size)}).\n\n"
    )
    slot_rows = [(f"{i}", f"`{_hex(r.in_window(i))}`", f"`{_hex(r.out_window(i))}`") for i in slots]
    return (
        "## Windows\n\nMemory regions after the registers.\n\n"
        + _table(("Offset", "Size", "Name", "Writer", "Description"), rows)
        + formula
        + _table(("Slot", "IN offset", "OUT offset"), slot_rows)
    )


def _about() -> str:
    # The module docstring is the protocol's prose; its ``::`` block is indented,
    # which Markdown also renders as code.
    _summary_line, _, text = (inspect.getdoc(r) or "").partition("\n\n")
    return "## How commands travel\n\n" + re.sub(r"::$", ":", text, flags=re.MULTILINE)


# -- helpers --------------------------------------------------------------------------------


def _doc(obj: object) -> str:
    return " ".join((inspect.getdoc(obj) or "").split())


def _type_name(code: str) -> str:
    count, letter = re.fullmatch(r"(\d*)(\w)", code).groups()  # type: ignore[union-attr]
    name = _TYPE_NAMES.get(letter, letter)
    return f"{name} × {count}" if count and letter != "x" else name


def _table(head: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _hex(value: int, digits: int = 4) -> str:
    return f"0x{value:0{digits}X}"


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % (scale // 16) == 0:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def _ascii(value: int, width: int) -> str:
    return value.to_bytes(width, "little").decode("ascii", "replace")


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
