"""``sidra board probe URL``: what a board says about itself, over any transport.

Opens the board, reads its identification and capabilities (``Board.info``) and
whatever link state its transport keeps, then closes it again. Nothing is
written to the board: probing is safe on a board another process is using
through a server (it only needs the URL to be free to open).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any
from urllib.parse import urlsplit

import typer

from sidra.cli.options import AsJson, BoardArg
from sidra.drivers import Board, BoardInfo, LinkStats, SidraError, open_board
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import FileBar, MappedBar, SysfsBar
from sidra.drivers.wire.device_times import DeviceTimes

__all__ = [
    "LINK_ATTRIBUTES",
    "LINK_UNITS",
    "allowed_times",
    "format_probe",
    "probe",
    "probe_command",
]

LINK_ATTRIBUTES = (
    "link_up",
    "timeout_s",
    "features",
    "queue_depth",
    "boot_count",
    "slot_window_bytes",
    "bar_size",
    "host_memory_bytes",
    "max_payload",
    "max_batch",
    "message_limit_bytes",
)
"""Plain attributes a transport may expose about its link (serial, PCIe; a served board's
call sizes, which its service announces), reported when present: transports differ, so
the probe shows what each one has rather than a fixed set. Flags show by name."""


def probe(url: str) -> dict[str, Any]:
    """Identification, capabilities and link state of the board at ``url``.

    Raises the :class:`~sidra.drivers.SidraError` of whatever went wrong (no such
    device, no permission, no answer, not a SIDRA board).
    """
    with open_board(url) as board:
        info = board.info
        link = link_state(board)
        link.update(bar_registers(url))
        report = {
            "url": url,
            "transport": type(board).__name__,
            "identification": info.identity(),
            "capabilities": _capabilities(info),
            "link": link,
        }
        times = getattr(board, "device_times", None)
        if isinstance(times, DeviceTimes):
            report["allowed_times"] = allowed_times(times, info)
        return report


def allowed_times(times: DeviceTimes, info: BoardInfo) -> dict[str, float]:
    """What the host allows the board over a command before it is late (the reference
    times, raised to what the board declares), µs: a board slower than that must
    declare its own (docs/wire-protocol.md §4.5, the PCIe map's PROGRAM_CELL_NS ...)."""
    return {
        "program_cell_us": 1e6 * times.program_cell_s,
        "cell_us": 1e6 * times.cell_s,
        "pass_vector_us": 1e6 * times.pass_s(info),
        "command_us": 1e6 * times.command_s,
    }


def _capabilities(info: BoardInfo) -> dict[str, Any]:
    return {
        "tiles": info.tile_count,
        "rows": info.rows,
        "cols": info.cols,
        "g_min_us": info.g_min_us,
        "g_max_us": info.g_max_us,
        "read_voltage_max_v": info.read_voltage_max_v,
        "dac_bits": info.dac_bits,
        "adc_bits": info.adc_bits,
        "adc_full_scale_ua": info.adc_full_scale_ua,
        "timing": dataclasses.asdict(info.timing),
    }


def link_state(board: Board) -> dict[str, Any]:
    """The transport's link counters and attributes ({} for an in-process board)."""
    state: dict[str, Any] = {}
    link_stats = getattr(board, "link_stats", None)
    stats: LinkStats | None = link_stats() if callable(link_stats) else board.stats().link
    if stats is not None:
        state.update(dataclasses.asdict(stats))
    for name in LINK_ATTRIBUTES:
        if name == "link_up" and "up" in state:  # the counters' own "up" says it already
            continue
        value = getattr(board, name, None)
        if isinstance(value, enum.Flag):
            state[name] = value.name or "none"
        elif isinstance(value, bool | int | float | str):
            state[name] = value
    device_stats = getattr(board, "device_link_stats", None)
    if callable(device_stats):  # the board's own counters of the same link (serial)
        state["device"] = dict(device_stats())
    return state


BAR_REGISTERS = (
    "VERSION", "BOARD_ID", "BOOT_COUNT", "STATUS", "ERROR_CODE", "QUEUE_DEPTH", "SQ_HEAD",
)  # fmt: skip
"""Read-only BAR0 registers a probe reports: which register map and board, the epoch,
the state and the rings' progress (FEATURES: the driver's ``features``, by name).
Reading them has no side effect on the board."""


def bar_registers(url: str) -> dict[str, Any]:
    """BAR_REGISTERS of a ``pcie://`` or ``pcie+file://`` board ({} for other URLs),
    read through a second mapping of the same BAR: what the board itself shows,
    whatever the driver has made of it."""
    parts = urlsplit(url)
    bar: MappedBar
    if parts.scheme == "pcie":
        bar = SysfsBar(parts.netloc.lower())
    elif parts.scheme == "pcie+file":
        bar = FileBar(parts.path)
    else:
        return {}
    try:
        values: dict[str, Any] = {n.lower(): bar.read32(r.OFFSET[n]) for n in BAR_REGISTERS}
    finally:
        bar.close()
    values["status_bits"] = r.Status(values["status"]).name or "none"
    values["register_map"] = f"{values['version'] >> 16}.{values['version'] & 0xFFFF}"
    return values


def format_probe(report: dict[str, Any]) -> str:
    """``report`` (from :func:`probe`) as lines for a person."""
    ident, caps = report["identification"], report["capabilities"]
    timing = caps["timing"]
    preset = ident["emulator_preset"] or "-"
    lines = [
        f"board         {report['url']} ({report['transport']})",
        f"model         {ident['model']}",
        f"serial        {ident['serial_number']}",
        f"firmware      {ident['firmware_version']}",
        f"preset        {preset}" + (" (emulated)" if ident["emulated"] else ""),
        f"array         {caps['tiles']} tiles x {caps['rows']} rows x {caps['cols']} cols",
        f"conductance   {caps['g_min_us']:g} .. {caps['g_max_us']:g} µS",
        f"read voltage  ± {caps['read_voltage_max_v']:g} V",
        f"converters    DAC {caps['dac_bits']} bits, ADC {caps['adc_bits']} bits (0 = ideal)"
        + (
            f", ADC full scale ± {caps['adc_full_scale_ua']:g} µA"
            if caps["adc_full_scale_ua"]
            else ""
        ),
        f"timing        MVM pass {timing['mvm_pass_ns']:g} ns, write pass "
        f"{timing['write_pass_ns']:g} ns, verify read {timing['verify_read_ns']:g} ns, "
        f"host loss {timing['host_loss_ns']:g} ns, power {timing['board_power_w']:g} W",
    ]
    allowed = report.get("allowed_times")
    if allowed is not None:
        lines.append(
            f"allowed       Program {allowed['program_cell_us']:g} µs/cell, read or rewrite "
            f"{allowed['cell_us']:g} µs/cell, pass {allowed['pass_vector_us']:g} µs/vector, "
            f"+ {allowed['command_us']:g} µs/command (the host's or the board's declared, "
            "whichever longer)"
        )
    link = report["link"]
    lines.append("link" + ("" if link else "          none (in-process board)"))
    width = max([16, *(len(name) for name in link)])
    for name, value in link.items():
        if isinstance(value, dict):  # the board's own counters (serial: GET_LINK_STATS)
            shown = "the board's own, every host's: " + ", ".join(
                f"{k} {_with_unit(k, v)}" for k, v in value.items()
            )
        else:
            shown = _with_unit(name, value)
        lines.append(f"  {name:<{width}} {shown}")
    return "\n".join(lines)


LINK_UNITS = {
    "bytes_sent": "B", "bytes_received": "B", "rx_bytes": "B", "tx_bytes": "B",
    "payload_limit": "B", "max_payload": "B", "slot_window_bytes": "B", "bar_size": "B",
    "host_memory_bytes": "B", "message_limit_bytes": "B", "max_batch": "vectors",
    "timeout_base_s": "s", "timeout_s": "s",
}  # fmt: skip
"""The unit a link figure is counted in, shown after it (the rest are counts or flags)."""


def _with_unit(name: str, value: Any) -> str:
    unit = LINK_UNITS.get(name)
    return f"{value} {unit}" if unit is not None and not isinstance(value, bool) else str(value)


def probe_command(url: BoardArg, as_json: AsJson = False) -> None:
    """Print a board's identification, capabilities and link state (exit 1 if unreachable)."""
    try:
        report = probe(url)
    except SidraError as exc:  # the driver's message names what is wrong: no traceback
        typer.echo(f"sidra board probe {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if as_json else format_probe(report))
