"""The ``sidra`` command line."""

import importlib
import os
from typing import Any

__all__ = ["app", "main"]

# gRPC's C core logs each failed TLS handshake of a connection attempt at INFO on stderr
# (five lines of OpenSSL's words over one `sidra whoami`), between the command's own
# lines and, under `sidra serve` with JSON logs, in no format a collector reads. The
# client says what the handshake found itself (sidra.client.tls_diagnosis). Read when
# gRPC is first imported, so set here, before any command module; a GRPC_VERBOSITY the
# user set is kept.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def __getattr__(name: str) -> Any:
    # The command line is built when first asked for (PEP 562): importing one command's
    # module (sidra.cli.jobs, say) does not import every other command's first.
    if name not in __all__:
        raise AttributeError(f"module 'sidra.cli' has no attribute {name!r}")
    entry = importlib.import_module("sidra.cli.main")
    # Importing sidra.cli.main bound the name `main` here to that module: the entry point
    # (`sidra = "sidra.cli:main"`) and `from sidra.cli import app, main` want its function.
    globals().update(app=entry.app, main=entry.main)
    return globals()[name]
