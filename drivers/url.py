"""Board URLs: ``open_board(url)`` picks a transport by scheme, as pyserial does.

Transports are found through the ``sidra.boards`` entry-point group: each entry
names a URL scheme and a factory that takes the split URL. This package ships
``serial://`` and ``socket://``; the emulator registers ``emu://`` and the gRPC
client ``grpc://`` from their own packages (pyproject.toml), so the driver layer
imports neither. ``register_scheme`` lets a lab add its own transport (or a test a
shim) at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, urlsplit

from sidra.drivers.errors import InvalidArgument

if TYPE_CHECKING:
    from sidra.drivers.base import Board

__all__ = [
    "ENTRY_POINT_GROUP",
    "as_typed",
    "check_board_url",
    "open_board",
    "query_options",
    "register_scheme",
    "schemes",
]

ENTRY_POINT_GROUP = "sidra.boards"
"""Entry-point group of board transports: name = URL scheme, value = factory(SplitResult)."""

BoardFactory = Callable[[SplitResult], "Board"]

_FACTORIES: dict[str, BoardFactory] = {}


def register_scheme(scheme: str, factory: BoardFactory) -> None:
    """Makes ``open_board`` hand URLs of ``scheme`` to ``factory``."""
    _FACTORIES[scheme] = factory


def schemes() -> list[str]:
    """The URL schemes ``open_board`` knows."""
    return sorted(set(_FACTORIES) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def open_board(url: str) -> Board:
    """Opens the board at ``url`` (e.g. ``emu://?preset=ideal&seed=1``)."""
    if not isinstance(url, str):  # urlsplit takes bytes too, and fails on anything else
        raise InvalidArgument("board url", url, f"a URL (str) starting with one of {_known()}")
    parts = urlsplit(url)
    if parts.fragment or url.endswith("#"):
        # No transport reads a fragment, and a '#' in a device or file path would cut it
        # there silently (pcie+file:///tmp/board#2 would map /tmp/board).
        raise InvalidArgument("board url", url, "a URL without a '#' fragment")
    factory = _FACTORIES.get(parts.scheme) or _installed_factory(parts.scheme)
    if factory is None:
        raise InvalidArgument("board url", url, f"a URL starting with one of {_known()}")
    return factory(parts)


def check_board_url(url: str) -> bool:
    """Refuses (InvalidArgument) a URL :func:`open_board` would refuse for its scheme,
    shape or options, opening nothing; True when its transport checked it so (a factory
    that is a ``from_url`` of a class with ``check_url``), False when only the scheme
    could be."""
    if not isinstance(url, str):
        raise InvalidArgument("board url", url, f"a URL (str) starting with one of {_known()}")
    parts = urlsplit(url)
    factory = _FACTORIES.get(parts.scheme) or _installed_factory(parts.scheme)
    if factory is None or parts.fragment or url.endswith("#"):
        raise InvalidArgument("board url", url, f"a URL starting with one of {_known()}")
    check = getattr(getattr(factory, "__self__", None), "check_url", None)
    if check is None:
        return False
    check(parts)
    return True


def _known() -> str:
    """The schemes a URL may start with, as an error lists them (read only on refusal:
    the installed ones come from the package metadata)."""
    return ", ".join(f"{s}://" for s in schemes())


def _installed_factory(scheme: str) -> BoardFactory | None:
    found = entry_points(group=ENTRY_POINT_GROUP, name=scheme)
    if not scheme or not found:
        return None
    factory: BoardFactory = next(iter(found)).load()
    _FACTORIES[scheme] = factory
    return factory


def as_typed(url: SplitResult) -> str:
    """``url`` as it was written, for a message: ``geturl()`` drops an empty host, so
    ``pcie:///dev/shm/b`` came back as ``pcie:/dev/shm/b``, which nobody typed."""
    text = f"{url.scheme}://{url.netloc}{url.path}"
    return (
        text + (f"?{url.query}" if url.query else "") + (f"#{url.fragment}" if url.fragment else "")
    )


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
