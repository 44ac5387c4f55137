"""The serial transport: SIDRA wire protocol v1 over pyserial (docs/wire-protocol.md).

``open_board("serial:///dev/ttyUSB0?baud=921600")`` or ``open_board("socket://host:port")``
returns a :class:`SerialDriver`; ``open_board("serial://?serial_number=SIDRA-Y1-0007")``
finds that board among the serial ports, and a device answering as another board is
refused (:class:`IdentityMismatch`). The message codecs it shares with board firmware
live in :mod:`sidra.drivers.wire`.
"""

from sidra.drivers.serial.driver import SerialDriver
from sidra.drivers.serial.finder import IdentityMismatch
from sidra.drivers.serial.link import LinkSettings

__all__ = ["IdentityMismatch", "LinkSettings", "SerialDriver"]
