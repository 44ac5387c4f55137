"""BAR0 of a SIDRA PCIe board: the one definition of its registers, rings and windows.

The host driver, the virtual PCIe board and docs/pcie-register-map.md (generated
from this module, checked fresh by a test) all read these tables. Everything is
little-endian. Registers are accessed only as single aligned 32- or 64-bit
loads and stores; rings and data windows are plain memory, bulk-copied.

Ring positions (SQ_TAIL, SQ_HEAD, CQ_HEAD and the device's own completion count) are
free-running u32 counts since the last ring reset, never indices: entry n of a ring lies
at index n mod D, so all D entries may be in flight and a full ring is told from an
empty one by the difference of the counts.

Layout (queue depth D, slot window W bytes)::

    0x0000  registers
    0x0100  identity strings (4 × 64 bytes, UTF-8, NUL-padded)
    0x1000  submission ring: D entries × 64 bytes (host writes)
    SQ_END  completion ring: D entries × 32 bytes (device writes)
    0x10000 slot windows: slot i has an input window (host writes) and an output
            window (device writes), each W bytes, at WINDOWS + i·2W and + i·2W + W

Commands travel as the payloads of docs/wire-protocol.md §6, one operation per
wire message id (``opcode``): the host writes the request payload (head, then
the array inline) into its slot's input window, fills a submission entry and
writes the SQ tail doorbell last. The device answers in the slot's output
window (response head, then the result array, or the array in host memory:
below) and then writes a completion entry whose phase bit, flipping on every
pass around the ring, tells the host it is new (NVMe 2.0 §4.6).

Host memory (map 1.2, FEATURES bit 3): the host may name, per command, a buffer in
a region of its own memory (HOST_MEM_BASE, HOST_MEM_BYTES) where the device writes
the result array of a pass, as an NVMe controller writes read data to the host
addresses of a command: a large result then crosses once, and the host never
copies it out of the BAR (on hardware, CPU loads from a BAR are uncached, one
bus transaction each). The response head still lies in the output window.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

__all__ = [
    "BAR_SIZE",
    "BOARD_ID",
    "COMPLETION",
    "COMPLETION_FIELDS",
    "CQ_OFFSET",
    "IDENTITY_OFFSET",
    "IDENTITY_STRINGS",
    "IN_HOST_MEMORY",
    "MAGIC",
    "OFFSET",
    "QUEUE_DEPTH",
    "REGISTERS",
    "SLOT_WINDOW_BYTES",
    "SQ_OFFSET",
    "SUBMISSION",
    "SUBMISSION_FIELDS",
    "VERSION",
    "WINDOWS",
    "WINDOWS_OFFSET",
    "Control",
    "Register",
    "Status",
    "Window",
    "in_window",
    "out_window",
]

MAGIC = 0x41524453
"""``'SDRA'`` read as a little-endian u32: the first thing a host checks."""
VERSION = 0x0001_0003
"""Register-map version, major << 16 | minor. A host refuses another major.
1.1 added IRQ_ARM and STATUS.PARKED (a host of 1.0 polls, and still works); 1.2 added
results written into host memory (HOST_MEM_BASE, HOST_MEM_BYTES, the submission's
result_room and result_addr, FEATURES bit 3; a host of 1.1 leaves them 0 and reads
every result from the output window, as before); 1.3 added the board's command times
(PROGRAM_CELL_NS, CELL_NS, PASS_VECTOR_NS, COMMAND_US, as the serial HELLO declares
them: a host allows a command the longer of its reference time and the board's; it
reads them from a board of 1.3 or later only, and a host of 1.2 ignores them)."""
BOARD_ID = 0x3153
"""Board family id, ``'S1'`` read as a little-endian u32: SIDRA analog crossbar boards."""
QUEUE_DEPTH = 8
"""Entries per ring the map lays out (rings and slot windows at fixed offsets): a board
reports 1 .. 8 in QUEUE_DEPTH, and a SIDRA board 8, the virtual board's."""
SLOT_WINDOW_BYTES = (1 << 20) + (64 << 10)
"""Input and output window of each slot: a 1024-vector batch of 256 float32
inputs (1 MiB) or a full 256 × 256 tile, plus room for the payload head."""


class Status(IntFlag):
    """STATUS register bits."""

    READY = 0x1
    """The device services the rings (set from boot on; until the first ring reset only
    that reset, with NEEDS_INIT)."""
    BUSY = 0x2
    """At least one command is executing (informational: the host does not wait on it)."""
    ERROR = 0x4
    """A device fault; ERROR_CODE says which (informational: the host shows it in ``sidra
    board probe`` and acts on completions' statuses only)."""
    NEEDS_INIT = 0x8
    """Set at every (re)boot, with READY: the device services nothing but a ring reset
    until the host restarts its rings (CONTROL.RESET), which clears it."""
    PARKED = 0x10
    """Virtual boards only: the device loop sleeps, and a host that writes a doorbell
    also kicks it (a futex wake on SQ_TAIL). Hardware sees doorbells itself and never
    sets it."""


class Control(IntFlag):
    """CONTROL register bits (host writes)."""

    ENABLE = 0x1
    """Service the rings: the host writes it with every RESET (RESET | ENABLE), and the
    device acknowledges the reset by writing CONTROL = ENABLE (RESET cleared, ENABLE
    kept)."""
    RESET = 0x2
    """Reset the rings (not the array): the device zeroes SQ_TAIL, CQ_HEAD, SQ_HEAD,
    IRQ_ARM and the completion ring, restarts its counts at 0 (phase 1), drops any
    command it holds, takes the host-memory region, sets STATUS to READY (NEEDS_INIT
    cleared), and clears RESET last: the acknowledgement, which a host awaits for its
    URL's timeout (1 s by default)."""


@dataclass(frozen=True, slots=True)
class Register:
    """One register of BAR0."""

    name: str
    offset: int
    bits: int
    """32 or 64: the width of its single aligned access."""
    access: str
    """RO (device writes), WO (host writes), RW."""
    kind: str
    """u32, u64 or f64 (an IEEE-754 double's bit pattern in a 64-bit register)."""
    unit: str
    description: str


_REGISTERS = [
    ("MAGIC", 32, "RO", "u32", "", "0x41524453 ('SDRA'); anything else is not a SIDRA board"),
    ("VERSION", 32, "RO", "u32", "", "register-map version, major << 16 | minor"),
    ("BOARD_ID", 32, "RO", "u32", "", f"board family id, {BOARD_ID:#06x} ('S1')"),
    ("BOOT_COUNT", 32, "RO", "u32", "boots", "changes at every device (re)boot: the epoch "
     "(the reference device starts at a random value and adds 1); never 0 (a host's 'not "
     "attached yet') nor 0xFFFFFFFF (reads as a removed device)"),
    ("STATUS", 32, "RO", "u32", "", "READY 0x1, BUSY 0x2, ERROR 0x4, NEEDS_INIT 0x8, "
     "PARKED 0x10; a read flushes the host's posted writes"),
    ("ERROR_CODE", 32, "RO", "u32", "", "wire status of the last device fault (0 = none)"),
    ("CONTROL", 32, "RW", "u32", "", "ENABLE 0x1, RESET 0x2 (rings only)"),
    ("SCRATCH", 32, "RW", "u32", "", "free for the host: a write-then-read link check"),
    ("TILES", 32, "RO", "u32", "tiles", "number of crossbar tiles, >= 1"),
    ("ROWS", 32, "RO", "u32", "rows", "rows per tile (MVM inputs), >= 1 (and <= 65535: "
     "the wire's region fields are u16)"),
    ("COLS", 32, "RO", "u32", "columns", "columns per tile (MVM outputs), >= 1 (and "
     "<= 65535)"),
    ("DAC_BITS", 32, "RO", "u32", "bits", "input resolution, 0 = ideal; 0 .. 32"),
    ("ADC_BITS", 32, "RO", "u32", "bits", "output resolution, 0 = ideal; 0 .. 32"),
    ("FEATURES", 32, "RO", "u32", "", "bit 0: emulated (virtual clock); bit 1: profile; "
     "bit 2: region passes (MVM flags bit 0); bit 3: pass results into host memory "
     "(HOST_MEM_BASE); a host reads bits 0-15 only (the others: 0). A board without "
     "bit 0 answers ADVANCE_CLOCK UNSUPPORTED; without bit 1 it is never sent GET_PROFILE "
     "(pcie.md, \"Commands on the rings\")"),
    ("QUEUE_DEPTH", 32, "RO", "u32", "entries",
     "entries per ring in use: 1 .. 8 (the map has room for 8; a SIDRA board reports 8)"),
    ("SLOT_WINDOW_BYTES", 32, "RO", "u32", "bytes", "size of each slot's input and output "
     f"window: exactly {SLOT_WINDOW_BYTES} in this map (a host refuses another value)"),
    ("G_MIN_US", 64, "RO", "f64", "µS", "lowest programmable conductance: finite, >= 0"),
    ("G_MAX_US", 64, "RO", "f64", "µS", "highest programmable conductance: finite, "
     "above G_MIN_US"),
    ("READ_VOLTAGE_MAX_V", 64, "RO", "f64", "V", "read voltages lie in ± this: finite, > 0"),
    ("MVM_PASS_NS", 64, "RO", "f64", "ns", "one analog pass (timing model); this and "
     "the four below: finite, >= 0 (0 = not reported)"),
    ("WRITE_PASS_NS", 64, "RO", "f64", "ns", "one parallel write pass"),
    ("VERIFY_READ_NS", 64, "RO", "f64", "ns", "one verify read pass"),
    ("HOST_LOSS_NS", 64, "RO", "f64", "ns", "one loss computation next to the array"),
    ("BOARD_POWER_W", 64, "RO", "f64", "W", "board power while operating"),
    ("SQ_TAIL", 32, "WO", "u32", "entries", "submission-ring tail doorbell, written last: "
     "the entries the host has submitted since the ring reset, a free-running count that "
     "wraps at 2^32 (not an index); entry n lies at SQ index n mod QUEUE_DEPTH"),
    ("CQ_HEAD", 32, "WO", "u32", "entries", "completion-ring head doorbell: the completions "
     "the host has consumed since the ring reset, a free-running count (wraps at 2^32); "
     "the device posts its completion n only while n - CQ_HEAD < QUEUE_DEPTH"),
    ("SQ_HEAD", 32, "RO", "u32", "entries", "the submissions the device has taken since the "
     "ring reset, a free-running count (wraps at 2^32); the device takes entries while "
     "SQ_HEAD != SQ_TAIL (all QUEUE_DEPTH entries may be in flight at once)"),
    ("IRQ_ARM", 32, "RW", "u32", "", "host writes 1 before it sleeps for a completion; the "
     "device clears it to 0 after its next completion entry and raises the interrupt "
     "(a virtual board: a futex wake on this register)"),
    ("ADC_FULL_SCALE_UA", 64, "RO", "f64", "µA", "ADC output bound: one code is this / "
     "(2^(ADC_BITS-1) - 1); 0 = ideal ADC or not reported"),
    ("HOST_MEM_BASE", 64, "RW", "u64", "address", "bus address (IOVA) of the host-memory "
     "region the device may write pass results into (FEATURES bit 3; pcie.md, \"Results in "
     "host memory\"); the host writes it before a ring reset, the device takes it at the "
     "reset; 0 at every boot"),
    ("HOST_MEM_BYTES", 64, "RW", "u64", "bytes", "size of that region, 0 = none; taken at "
     "the ring reset, where the device writes 0 here when it cannot reach the region; 0 at "
     "every boot"),
    ("PROGRAM_CELL_NS", 32, "RO", "u32", "ns", "worst-case write-verify of one cell: a "
     "Program may take its cells × this (0 = not declared: the host allows 20 µs a cell)"),
    ("CELL_NS", 32, "RO", "u32", "ns", "worst-case read or rewrite of one cell "
     "(ReadConductance, Perturb, Restore, a PerturbedMVM's writes; 0: 1 µs)"),
    ("PASS_VECTOR_NS", 32, "RO", "u32", "ns", "worst-case pass of one input vector through "
     "a whole tile, conversions included (0: 100 ns × rows × cols)"),
    ("COMMAND_US", 32, "RO", "u32", "µs", "worst-case fixed time of any command, on top of "
     "the above (the firmware's own handling; 0: none)"),
]  # fmt: skip


def _layout() -> tuple[Register, ...]:
    registers, offset = [], 0
    for name, bits, access, kind, unit, description in _REGISTERS:
        size = bits // 8
        offset = -(-offset // size) * size  # natural alignment
        registers.append(Register(name, offset, bits, access, kind, unit, description))
        offset += size
    return tuple(registers)


REGISTERS: tuple[Register, ...] = _layout()
"""Every register, in address order."""
OFFSET = {r.name: r.offset for r in REGISTERS}
"""Register name -> byte offset in BAR0."""

IDENTITY_OFFSET = 0x100
IDENTITY_STRINGS = ("model", "serial_number", "firmware_version", "emulator_preset")
"""UTF-8, NUL-padded, 64 bytes each, at IDENTITY_OFFSET in this order."""
IDENTITY_BYTES = 64

SQ_OFFSET = 0x1000


def _entry_struct(fields: tuple[tuple[str, str, str], ...]) -> struct.Struct:
    """The little-endian struct a field list spells: one spelling of each entry."""
    return struct.Struct("<" + "".join(code for _, code, _ in fields))


SUBMISSION_FIELDS = (
    ("command_id", "H", "host-chosen id, echoed by the completion"),
    ("opcode", "H", "wire message id of the operation (docs/wire-protocol.md §6)"),
    ("epoch", "I", "BOOT_COUNT the host last read; another value is a stale command"),
    ("payload_len", "I", "bytes of request payload in the slot's input window"),
    ("slot", "I", "slot whose input and output windows the command uses"),
    ("head_len", "I", "bytes of payload head when an array always travels staged (Program: "
     "the targets follow the head in the window); 0 = the whole payload is the head"),
    ("result_room", "I", "MVM and TRANSPOSE_MVM only: bytes the host lends at result_addr "
     "for the result array; 0 = answer in the slot's output window (register map 1.2, "
     "FEATURES bit 3); ignored by every other command"),
    ("result_addr", "Q", "bus address in the HOST_MEM region where the device writes a "
     "result that fits result_room (the response head stays in the output window); room "
     "outside the region is refused BAD_PAYLOAD"),
    ("reserved", "32x", "zero"),
)  # fmt: skip
"""Submission entry field by field: (name, struct code, meaning)."""
SUBMISSION = _entry_struct(SUBMISSION_FIELDS)
"""Submission entry, 64 bytes: the host fills one per command, after the payload is in
the slot's input window and before it writes SQ_TAIL."""
CQ_OFFSET = SQ_OFFSET + QUEUE_DEPTH * SUBMISSION.size
COMPLETION_FIELDS = (
    ("command_id", "H", "command_id of the submission entry answered"),
    ("status", "H", "wire status (0 = success)"),
    ("phase_and_slot", "I", "bit 0: phase, 1 ^ ((n div QUEUE_DEPTH) & 1) for the device's "
     "completion n (counted from 0 at the ring reset, at CQ index n mod QUEUE_DEPTH): 1 on "
     "the first pass around the ring, flipping on every pass; bit 1: "
     "the result array lies at the submission's result_addr, not after the head (never on "
     "an error); bits 2-7: 0; bits 8..: slot"),
    ("head_len", "I", "bytes of response head at the start of the slot's output window"),
    ("result_len", "I", "bytes of result array: after the head, or at result_addr with "
     "phase_and_slot bit 1"),
    ("time_ns", "d", "modeled time of the command, ns"),
    ("energy_nj", "d", "modeled energy of the command, nJ"),
)  # fmt: skip
"""Completion entry field by field: (name, struct code, meaning)."""
COMPLETION = _entry_struct(COMPLETION_FIELDS)
"""Completion entry, 32 bytes: the response lies in the slot's output window (head, then
result; an error payload is the head), or its head there and its result in host memory
(phase_and_slot bit 1). The device writes phase_and_slot (offset 4)
last, as one aligned 32-bit store; the host polls it."""
IN_HOST_MEMORY = 0x2
"""Bit of a completion's phase_and_slot: its result array lies at the submission entry's
result_addr in host memory (the device wrote it there before the entry)."""
WINDOWS_OFFSET = 0x10000


@dataclass(frozen=True, slots=True)
class Window:
    """A memory region of BAR0 (rings, identity, data windows)."""

    name: str
    offset: int
    size: int
    writer: str
    description: str


def in_window(slot: int) -> int:
    """Offset of slot ``slot``'s input window."""
    return WINDOWS_OFFSET + slot * 2 * SLOT_WINDOW_BYTES


def out_window(slot: int) -> int:
    """Offset of slot ``slot``'s output window."""
    return in_window(slot) + SLOT_WINDOW_BYTES


WINDOWS: tuple[Window, ...] = (
    Window("IDENTITY", IDENTITY_OFFSET, len(IDENTITY_STRINGS) * IDENTITY_BYTES, "device",
           "model, serial_number, firmware_version, emulator_preset: 64 B each"),
    Window("SQ", SQ_OFFSET, QUEUE_DEPTH * SUBMISSION.size, "host", "submission ring"),
    Window("CQ", CQ_OFFSET, QUEUE_DEPTH * COMPLETION.size, "device", "completion ring"),
    *(
        w
        for slot in range(QUEUE_DEPTH)
        for w in (
            Window(f"IN[{slot}]", in_window(slot), SLOT_WINDOW_BYTES, "host",
                   f"request payload of slot {slot}"),
            Window(f"OUT[{slot}]", out_window(slot), SLOT_WINDOW_BYTES, "device",
                   f"response of slot {slot}"),
        )
    ),
)  # fmt: skip
"""Every memory region after the registers, in address order."""


def _bar_size() -> int:
    end = out_window(QUEUE_DEPTH - 1) + SLOT_WINDOW_BYTES
    return 1 << (end - 1).bit_length()  # BARs are powers of two


BAR_SIZE = _bar_size()
"""Size of BAR0, bytes (a power of two, as PCI requires)."""
