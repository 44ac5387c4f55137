"""Which serial ports hold a SIDRA board: every port asked HELLO, nothing else written
(``sidra board scan``).

The ports are those a search by serial number asks (:mod:`~sidra.drivers.serial.finder`):
what ``serial.tools.list_ports`` lists, and with ``ptys`` the pseudo-terminals nobody
uses (where the virtual board lives). A port another process holds (a running ``sidra
serve``, a terminal program) is not opened, a pseudo-terminal a host holds is not
asked: both are reported busy. A port that does not answer HELLO in time holds no
SIDRA board at that line rate (or one that is off).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass

from sidra.drivers.serial.driver import port_opener
from sidra.drivers.serial.finder import BUSY, candidate_ports, hello_at, is_pseudo_terminal
from sidra.drivers.serial.link import LinkSettings, Port
from sidra.drivers.wire.messages import Hello

__all__ = ["BY_ID", "PortFound", "scan_serial_ports"]

BY_ID = "/dev/serial/by-id"
"""udev's stable names of USB serial adapters: the same name whichever ttyUSB the
adapter gets."""


@dataclass(frozen=True, slots=True)
class PortFound:
    """One serial port as the scan found it."""

    device: str
    state: str
    """``board`` (it answered HELLO), ``busy`` (not asked: held by another process or a
    host) or ``silent`` (no valid answer in time)."""
    hello: Hello | None = None
    """The board's HELLO answer (state ``board``)."""
    stable_name: str | None = None
    """The port's name under :data:`BY_ID`, when udev gives it one."""

    @property
    def url(self) -> str | None:
        """The board URL that finds this board wherever its port moves: by its serial
        number, among the pseudo-terminals too when it is on one (None when no board
        answered)."""
        if self.hello is None:
            return None
        ptys = "&search_ptys=1" if is_pseudo_terminal(self.device) else ""
        return f"serial://?serial_number={self.hello.serial_number}{ptys}"


def _stable_names() -> dict[str, str]:
    """The :data:`BY_ID` link of each device it names, by the device's real path."""
    names = {}
    for link in sorted(glob.glob(f"{BY_ID}/*")):
        names[os.path.realpath(link)] = link
    return names


def scan_serial_ports(
    settings: LinkSettings | None = None,
    *,
    ptys: bool = False,
    open_port: Callable[[str], Port] | None = None,
) -> list[PortFound]:
    """Every serial port (and with ``ptys`` every unused pseudo-terminal) asked HELLO at
    ``settings``' line rate (default: the link's, 921,600 Bd), in the order listed.
    ``open_port``: how a port is opened (default: exclusively, as the driver does)."""
    settings = settings or LinkSettings()
    opener = open_port or port_opener(settings, exclusive=True)
    stable = _stable_names()
    found = []
    for device in candidate_ports(ptys=ptys):
        answer = hello_at(device, opener, settings)
        name = stable.get(os.path.realpath(device))
        if answer == BUSY:
            found.append(PortFound(device, "busy", stable_name=name))
        elif answer is None:
            found.append(PortFound(device, "silent", stable_name=name))
        else:
            assert isinstance(answer, Hello)
            found.append(PortFound(device, "board", answer, name))
    return found
