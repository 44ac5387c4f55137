"""The serial transport: SIDRA wire protocol v1 over pyserial (docs/wire-protocol.md).

``open_board("serial:///dev/ttyUSB0?baud=921600")`` or ``open_board("socket://host:port")``
returns a :class:`SerialDriver`; ``open_board("serial://?serial_number=SIDRA-Y1-0007")``
finds that board among the serial ports, and a device answering as another board is
refused (:class:`IdentityMismatch`). The message codecs it shares with board firmware
live in :mod:`sidra.drivers.wire`.

Its own errors, beneath the tree of :mod:`sidra.drivers.errors`::

    BoardUnavailable
    └── IdentityMismatch     a device answered HELLO as another board
    DeadlineExceeded
    └── LineDamage           every attempt of an exchange came back damaged (§4.6)
"""

from sidra.drivers.serial.driver import SerialDriver
from sidra.drivers.serial.finder import IdentityMismatch
from sidra.drivers.serial.link import LineDamage, LinkSettings

__all__ = ["IdentityMismatch", "LineDamage", "LinkSettings", "SerialDriver"]
