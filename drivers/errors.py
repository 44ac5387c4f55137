"""The SIDRA HIL exception tree, shared by drivers, emulator, server and client.

Every layer raises these; the server turns them into gRPC status codes in one
place (``sidra.server.status``) and the client turns status codes back into
the same classes in one place (``sidra.client.errors``), so code written
against a local driver and a remote board catches the same exceptions::

    SidraError
    ├── InvalidArgument (ValueError)      malformed request: dtype, shape, NaN, enum
    │   └── OutOfRange                    well-formed but outside the board's limits
    ├── FailedPrecondition                board state does not allow the call
    │   ├── LeaseHeld                     a tile or the board is leased by another session
    │   └── SessionClosed                 the session a call names is not open
    ├── BoardUnavailable (ConnectionError) board or server unreachable
    ├── BoardReset                        board restarted during the call
    ├── DeadlineExceeded (TimeoutError)   the call ran out of time
    ├── Unsupported                       this board cannot do that (e.g. a virtual clock)
    ├── NotFound (LookupError)            what the call names does not exist (a job id)
    │   └── DatasetNotKept                a data set file named by its SHA-256 is not kept
    ├── AlreadyExists                     what the call would create exists (a name in use)
    ├── ResourceExhausted                 a per-caller limit of the service refused the call
    ├── Unauthenticated                   the service does not know the caller (no token)
    ├── PermissionDenied                  the caller's role or host does not allow the call
    └── BoardFault                        fault inside the board or server

Argument errors carry ``field``, ``value`` and ``allowed`` so a message always
names what was wrong, what was received and what would have been accepted;
so does :class:`ResourceExhausted`, whose field is the limit
(``limits.max_batch``). It is not an argument error: the same call may pass
later (once the caller's other calls finish) or under another limit.
Echoed text is capped at :data:`ECHO_LIMIT` characters (:func:`shown`), so an
error about a huge request never outgrows the request itself.

Each boundary has one table here, read in both directions: :data:`GRPC_STATUS`
(exception <-> gRPC status code name, used by ``sidra.server.status`` and
``sidra.client.errors``) and :data:`WIRE_STATUS` (exception <-> wire status name
of docs/wire-protocol.md, used by the serial driver and the board firmware).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the value types import nothing of this module, but keep it a leaf
    from sidra.drivers.types import LinkDown

__all__ = [
    "ECHO_LIMIT",
    "GRPC_STATUS",
    "WIRE_STATUS",
    "AlreadyExists",
    "BoardFault",
    "BoardReset",
    "BoardUnavailable",
    "DatasetNotKept",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LeaseHeld",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "SessionClosed",
    "SidraError",
    "Unauthenticated",
    "Unsupported",
    "capped",
    "exception_for",
    "refused_argument",
    "refused_setting",
    "shown",
    "status_for",
]


class SidraError(Exception):
    """Root of every error SIDRA HIL raises on purpose."""


class InvalidArgument(SidraError, ValueError):
    """A request field is malformed (wrong dtype, shape, byte length, NaN/Inf, enum)."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {shown(value)}, expected {capped(allowed)}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.allowed))


class OutOfRange(InvalidArgument):
    """A request field is well-formed but outside the board's limits."""


class FailedPrecondition(SidraError):
    """The board's state does not allow the call (e.g. a lease held elsewhere)."""


class LeaseHeld(FailedPrecondition):
    """The call would write (or, by the server's policy, read) a tile, or act on the
    whole board, leased by another session; the message names the holder and the expiry."""


class SessionClosed(FailedPrecondition):
    """The session a call names is not open: it expired, was closed, or never was the
    caller's (a restarted server knows no sessions)."""


class BoardUnavailable(SidraError, ConnectionError):
    """The board or the server cannot be reached."""

    link_down: LinkDown | None = None
    """Set when a server's board link is down: since when, why and what the server does
    to get it back (the server sets it on the error, and a client reads it back from the
    status details; None otherwise)."""


class BoardReset(SidraError):
    """The board restarted while the call was in flight; its state may be lost."""


class DeadlineExceeded(SidraError, TimeoutError):
    """The call did not finish before its deadline."""


class Unsupported(SidraError):
    """The board does not offer this operation (e.g. a virtual clock on hardware)."""


class NotFound(SidraError, LookupError):
    """What the call names does not exist on the service (a job id no job has)."""


class DatasetNotKept(NotFound):
    """The data set file a call names by its SHA-256 is not kept for the caller: never
    uploaded, or deleted or expired since (a client that looked before sends it again)."""


class AlreadyExists(SidraError):
    """What the call would create exists already (a deployment name in use)."""


class ResourceExhausted(SidraError):
    """A limit the service sets per caller refused the call before it reached the board:
    request size, vectors per batch, calls in flight (``[limits]`` of ``sidra serve``).

    ``field`` names the limit (``limits.max_batch``), ``value`` what the call asked for
    with its unit (``"10000 vectors"``), ``allowed`` the limit and whose it is. Unlike
    an argument error the value is the service's own description, shown unquoted.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {capped(str(value))}, expected {capped(allowed)}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.allowed))


class Unauthenticated(SidraError):
    """The service does not know the caller: no bearer token, an unknown one, an expired
    one, or a malformed ``authorization`` header (``[auth]`` of ``sidra serve``)."""

    refusal: str | None = None
    """Why, as the service says it (board.proto "Errors"): ``missing_token``,
    ``unknown_token`` or ``expired_token``; None from a service that does not say. A
    client acts on this (e.g. fetches a new token when expired), never on the message."""


class PermissionDenied(SidraError):
    """The service knows the caller, and its role does not allow the call (the message
    names the role needed), or the caller may not use what it named (another session's
    shared memory, a region registered from another host)."""

    refusal: str | None = None
    """``insufficient_role`` when the caller's role does not allow the call (or a step
    of its RunSequence); None for what it named (shared memory) or from a service that
    does not say."""


class BoardFault(SidraError):
    """A fault inside the board or the server that the caller cannot fix."""


ErrorTable = tuple[tuple[type[SidraError], str], ...]

# Most specific class first: OutOfRange is an InvalidArgument, every class a SidraError.
GRPC_STATUS: ErrorTable = (
    (OutOfRange, "OUT_OF_RANGE"),
    (InvalidArgument, "INVALID_ARGUMENT"),
    (FailedPrecondition, "FAILED_PRECONDITION"),
    (BoardUnavailable, "UNAVAILABLE"),
    (BoardReset, "ABORTED"),
    (DeadlineExceeded, "DEADLINE_EXCEEDED"),
    (Unsupported, "UNIMPLEMENTED"),
    (NotFound, "NOT_FOUND"),
    (AlreadyExists, "ALREADY_EXISTS"),
    (ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (Unauthenticated, "UNAUTHENTICATED"),
    (PermissionDenied, "PERMISSION_DENIED"),
    (BoardFault, "INTERNAL"),
    (SidraError, "UNKNOWN"),
)
"""Exception <-> gRPC status code name (``grpc.StatusCode[name]``)."""

REFINED: tuple[type[SidraError], ...] = (LeaseHeld, SessionClosed, DatasetNotKept)
"""Classes that share their status code with their parent: the server names the class
in ErrorInfo metadata "exception" and the client raises it (``sidra.client.errors``)."""

# A board on a link cannot be "unavailable" or "past a deadline" in its own
# answer: the host decides those. BoardReset travels as STALE_EPOCH. Limits are the
# service's, never a board's: ResourceExhausted has no wire status (INTERNAL if a
# board driver ever raised one).
WIRE_STATUS: ErrorTable = (
    (OutOfRange, "OUT_OF_RANGE"),
    (InvalidArgument, "INVALID_ARGUMENT"),
    (FailedPrecondition, "FAILED_PRECONDITION"),
    (BoardReset, "STALE_EPOCH"),
    (Unsupported, "UNSUPPORTED"),
    (BoardFault, "INTERNAL"),
    (SidraError, "INTERNAL"),
)
"""Exception <-> wire status name (``sidra.drivers.wire.messages.Status[name]``)."""


def status_for(exc: SidraError, table: ErrorTable) -> str:
    """The status name ``table`` gives ``exc`` (its most specific class listed)."""
    return next(name for cls, name in table if isinstance(exc, cls))


def exception_for(name: str, table: ErrorTable) -> type[SidraError]:
    """The exception class of status ``name`` (the first listed), SidraError if unknown."""
    return next((cls for cls, known in table if known == name), SidraError)


ECHO_LIMIT = 200
"""Most characters of a received value (or of an ``allowed`` text built from one)
that an error message, ErrorInfo metadata or BadRequest description repeats.
A 5 KB request declaring 1,000 dimensions must not get a 12 KB error back: a
default gRPC client refuses trailers beyond about 8 KiB (RESOURCE_EXHAUSTED)."""


def capped(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    marker = f"... ({len(text) - limit} more characters)"
    return text[:limit] + marker


def shown(value: Any) -> str:
    """``value`` as an error echoes it: strings quoted, capped at :data:`ECHO_LIMIT`."""
    return capped(repr(value) if isinstance(value, str) else str(value))


def refused_setting(
    error: Mapping[str, Any], allowed_keys: Callable[[tuple[Any, ...]], str] | None = None
) -> str:
    """One value a settings or profile file was refused for (an item of pydantic's
    ``ValidationError.errors()``), as ``key: what is allowed; got value``: the same line
    for ``sidra serve``'s settings and an emulator profile. ``allowed_keys`` names the
    keys of the section an unknown key stands in (from its location)."""
    message = _message(error)
    key = ".".join(str(part) for part in error["loc"])
    if not key or message.startswith(f"{key}."):
        return message  # a rule across keys: its message starts with the key it is about
    if error["type"] == "missing":
        return f"{key}: required, not given"
    if error["type"] == "extra_forbidden":
        allowed = "" if allowed_keys is None else f" (allowed: {allowed_keys(error['loc'])})"
        return f"{key}: unknown key{allowed}"
    if error["type"] == "value_error":  # the model's own check: its message says it all
        return f"{key}: {message}"
    return f"{key}: {message[:1].lower()}{message[1:]}; got {error['input']!r}"


def refused_argument(
    error: Mapping[str, Any], field: str, allowed_keys: Callable[[], str]
) -> InvalidArgument:
    """One value a request's options were refused for (an item of pydantic's
    ``ValidationError.errors()``) as an InvalidArgument: its field the option's path
    under ``field`` (``options_json.steps``), the value given, what is allowed
    (``allowed_keys()`` for an unknown option). A rule across options names its option
    at the start of its message, and the field is ``field`` itself."""
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        allowed = f"one of {allowed_keys()}"
    else:
        message = _message(error).removeprefix("Input should be ")
        allowed = message[:1].lower() + message[1:]
    return InvalidArgument(f"{field}.{path}" if path else field, error["input"], allowed)


def _message(error: Mapping[str, Any]) -> str:
    """pydantic's message of one refusal without the prefix its own checks add."""
    return str(error["msg"]).removeprefix("Value error, ")
