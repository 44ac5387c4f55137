"""The SIDRA HIL exception tree, shared by drivers, emulator, server and client.

Every layer raises these; the server turns them into gRPC status codes in one
place (``sidra.server.status``) and the client turns status codes back into
the same classes in one place (``sidra.client.errors``), so code written
against a local driver and a remote board catches the same exceptions::

    SidraError
    ├── InvalidArgument (ValueError)      malformed request: dtype, shape, NaN, enum
    │   └── OutOfRange                    well-formed but outside the board's limits
    ├── FailedPrecondition                board state does not allow the call
    ├── BoardUnavailable (ConnectionError) board or server unreachable
    ├── BoardReset                        board restarted during the call
    ├── DeadlineExceeded (TimeoutError)   the call ran out of time
    ├── Unsupported                       this board cannot do that (e.g. a virtual clock)
    └── BoardFault                        fault inside the board or server

Argument errors carry ``field``, ``value`` and ``allowed`` so a message always
names what was wrong, what was received and what would have been accepted.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BoardFault",
    "BoardReset",
    "BoardUnavailable",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "OutOfRange",
    "SidraError",
    "Unsupported",
]


class SidraError(Exception):
    """Root of every error SIDRA HIL raises on purpose."""


class InvalidArgument(SidraError, ValueError):
    """A request field is malformed (wrong dtype, shape, byte length, NaN/Inf, enum)."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {_show(value)}, expected {allowed}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.allowed))


class OutOfRange(InvalidArgument):
    """A request field is well-formed but outside the board's limits."""


class FailedPrecondition(SidraError):
    """The board's state does not allow the call (e.g. a lease held elsewhere)."""


class BoardUnavailable(SidraError, ConnectionError):
    """The board or the server cannot be reached."""


class BoardReset(SidraError):
    """The board restarted while the call was in flight; its state may be lost."""


class DeadlineExceeded(SidraError, TimeoutError):
    """The call did not finish before its deadline."""


class Unsupported(SidraError):
    """The board does not offer this operation (e.g. a virtual clock on hardware)."""


class BoardFault(SidraError):
    """A fault inside the board or the server that the caller cannot fix."""


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."
