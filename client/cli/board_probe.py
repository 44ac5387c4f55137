"""``sidra board probe URL``: what a board says about itself, over any transport.

Opens the board, reads its identification and capabilities (``Board.info``) and
whatever link state its transport keeps, then closes it again. Nothing is
written to the board: probing is safe on a board another process is using
through a server (it only needs the URL to be free to open).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sidra.drivers import Board, BoardInfo, LinkStats, open_board

__all__ = ["LINK_ATTRIBUTES", "format_probe", "probe"]

LINK_ATTRIBUTES = (
    "link_up",
    "queue_depth",
    "boot_count",
    "slot_window_bytes",
    "bar_size",
    "max_payload",
)
"""Plain attributes a transport may expose about its link (serial, PCIe), reported when
present: transports differ, so the probe shows what each one has rather than a fixed set."""


def probe(url: str) -> dict[str, Any]:
    """Identification, capabilities and link state of the board at ``url``.

    Raises the :class:`~sidra.drivers.SidraError` of whatever went wrong (no such
    device, no permission, no answer, not a SIDRA board).
    """
    with open_board(url) as board:
        info = board.info
        return {
            "url": url,
            "transport": type(board).__name__,
            "identification": _identification(info),
            "capabilities": _capabilities(info),
            "link": link_state(board),
        }


def _identification(info: BoardInfo) -> dict[str, Any]:
    return {
        "model": info.model,
        "serial_number": info.serial_number,
        "firmware_version": info.firmware_version,
        "emulated": info.emulated,
        "emulator_preset": info.emulator_preset,
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
        value = getattr(board, name, None)
        if isinstance(value, bool | int | float | str):
            state[name] = value
    device_stats = getattr(board, "device_link_stats", None)
    if callable(device_stats):  # the board's own counters of the same link (serial)
        state["device"] = dict(device_stats())
    return state


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
        f"converters    DAC {caps['dac_bits']} bits, ADC {caps['adc_bits']} bits (0 = ideal)",
        f"timing        MVM pass {timing['mvm_pass_ns']:g} ns, write pass "
        f"{timing['write_pass_ns']:g} ns, verify read {timing['verify_read_ns']:g} ns, "
        f"host loss {timing['host_loss_ns']:g} ns, power {timing['board_power_w']:g} W",
    ]
    link = report["link"]
    if not link:
        lines.append("link          none (in-process board)")
    for name, value in link.items():
        if isinstance(value, dict):
            counters = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"link.{name:<8} {counters}")
        else:
            lines.append(f"link.{name:<8} {value}")
    return "\n".join(lines)
