"""The SIDRA HIL gRPC service: one board behind ``sidra.hil.v1.BoardService``.

The names below are imported when first used (PEP 562), so that a part of the service a
command line reads on its own (``sidra.server.security.tokens``, the state store) does
not import the whole service first.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sidra.server.app import DEFAULT_MAX_MESSAGE_BYTES, create_server
    from sidra.server.servicer import SERVICE_NAME, BoardServicer

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SERVICE_NAME", "BoardServicer", "create_server"]

_WHERE = {
    "DEFAULT_MAX_MESSAGE_BYTES": "sidra.server.app",
    "create_server": "sidra.server.app",
    "SERVICE_NAME": "sidra.server.servicer",
    "BoardServicer": "sidra.server.servicer",
}
"""The module each name of :data:`__all__` comes from."""


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sidra.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found here from now on, without this call
    return value
