"""Board URLs: ``open_board(url)`` picks a transport by scheme, as pyserial does.

Transports register a factory per scheme; ``register_scheme`` lets a lab add
its own (or a test add a shim) at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import SplitResult, parse_qsl, urlsplit

from sidra.drivers.base import BoardDriver
from sidra.drivers.errors import InvalidArgument

__all__ = ["open_board", "query_options", "register_scheme", "schemes"]

_FACTORIES: dict[str, Callable[[SplitResult], BoardDriver]] = {}


def register_scheme(scheme: str, factory: Callable[[SplitResult], BoardDriver]) -> None:
    """Makes ``open_board`` hand URLs of ``scheme`` to ``factory``."""
    _FACTORIES[scheme] = factory


def schemes() -> list[str]:
    """The URL schemes ``open_board`` knows."""
    _register_builtins()
    return sorted(_FACTORIES)


def open_board(url: str) -> BoardDriver:
    """Opens the board at ``url`` (e.g. ``emu://?preset=ideal&seed=1``)."""
    _register_builtins()
    parts = urlsplit(url)
    factory = _FACTORIES.get(parts.scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_FACTORIES))
        raise InvalidArgument("board url", url, f"a URL starting with one of {known}")
    return factory(parts)


def query_options(url: SplitResult, known: set[str]) -> dict[str, str]:
    """The query string of ``url`` as a dict; unknown or repeated keys are errors."""
    options: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True, strict_parsing=False):
        if key not in known:
            raise InvalidArgument(
                "board url option", key, f"one of {', '.join(sorted(known))} for {url.scheme}://"
            )
        if key in options:
            raise InvalidArgument("board url option", key, "each option at most once")
        options[key] = value
    return options


def _register_builtins() -> None:
    # Imported late: transports import this module for query_options.
    if "emu" not in _FACTORIES:
        from sidra.drivers.emu import EmulatorDriver

        register_scheme("emu", EmulatorDriver.from_url)
    if "serial" not in _FACTORIES:
        from sidra.drivers.serial import SerialDriver

        register_scheme("serial", SerialDriver.from_url)
        register_scheme("socket", SerialDriver.from_url)  # pyserial's TCP port URLs
