"""Server settings from the command line, the environment (``SIDRA_*``) or defaults."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sidra.server.app import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["ServerSettings"]


class ServerSettings(BaseSettings):
    """How ``sidra serve`` runs; each field can be set as ``SIDRA_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="SIDRA_", frozen=True, extra="forbid", use_attribute_docstrings=True
    )

    board: str = "emu://"
    """Board URL: ``emu://?preset=...``, ``serial:///dev/ttyUSB0?baud=921600``,
    ``socket://host:port`` (a board behind the wire protocol), ``pcie://0000:01:00.0`` or
    ``pcie+file:///path`` (a PCIe board's BAR0, or a virtual one behind a mapped file)."""
    listen: str = "127.0.0.1:50051"
    """host:port to listen on; port 0 picks a free one. Loopback unless TLS is configured."""
    max_message_mb: int = Field(DEFAULT_MAX_MESSAGE_BYTES // 2**20, ge=1, le=2047)
    """Largest gRPC message sent or received, MiB."""
    workers: int = Field(8, ge=1, le=256)
    """Worker threads of the gRPC server (calls on one board are serialised anyway)."""
    reflection: bool = True
    """Register gRPC server reflection, v1 and v1alpha, so grpcurl-style tools discover the API."""
