"""What the shell completes for a board URL (``sidra --install-completion`` sets it up).

Completion runs on every Tab: it names the URL schemes the drivers take, each emulator
preset and the serial ports present, and opens nothing."""

from __future__ import annotations

__all__ = ["board_urls"]


def board_urls(incomplete: str) -> list[str]:
    """The board URLs that start with ``incomplete``: ``emu://?preset=NAME`` for every
    preset, ``serial://PORT`` for every serial port the search for a board would ask
    (read from the system, not opened), and every scheme's ``SCHEME://`` for the rest to
    be typed."""
    # Imported here, not with the module: every command names this function for its
    # --board option, and only a completion needs the drivers and the presets.
    from sidra.drivers.serial.finder import candidate_ports
    from sidra.drivers.url import schemes
    from sidra.emulator import PRESETS

    candidates = [f"emu://?preset={name}" for name in PRESETS]
    candidates += [f"serial://{port}" for port in candidate_ports(ptys=False)]
    candidates += [f"{scheme}://" for scheme in schemes() if scheme != "emu"]
    return [url for url in candidates if url.startswith(incomplete)]
