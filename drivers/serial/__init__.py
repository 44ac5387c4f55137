"""The serial transport: SIDRA wire protocol v1 over pyserial (docs/wire-protocol.md).

``open_board("serial:///dev/ttyUSB0?baud=921600")`` or ``open_board("socket://host:port")``
returns a :class:`SerialDriver`; :mod:`~sidra.drivers.serial.faults` damages a link on
purpose for tests.
"""

from sidra.drivers.serial.driver import SerialDriver
from sidra.drivers.serial.faults import FaultConfig, FaultShim
from sidra.drivers.serial.link import LinkSettings

__all__ = ["FaultConfig", "FaultShim", "LinkSettings", "SerialDriver"]
