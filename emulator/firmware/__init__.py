"""Virtual board firmware: the emulator behind the serial wire protocol.

``sidra board serve --pty`` runs it on a pseudo-terminal; tests use
:func:`serve_virtual_board`.
"""

from sidra.emulator.firmware.device import VirtualBoard
from sidra.emulator.firmware.serve import (
    LinkServer,
    PtyServer,
    TcpServer,
    serve_virtual_board,
)

__all__ = ["LinkServer", "PtyServer", "TcpServer", "VirtualBoard", "serve_virtual_board"]
