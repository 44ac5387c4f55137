"""Shared-memory tensors for a client on the server's host (session.proto, "Shared memory").

``board.shared_memory(size_bytes)`` creates a POSIX shared-memory object
(``multiprocessing.shared_memory``) and registers it in the board's session; arrays
placed in it (:meth:`SharedRegion.array`) are named by MVM and TransposeMVM requests
(``board.mvm_shared``, or ``board.mvm_shared_stream`` for many, pipelined) instead of
travelling in them: the server reads the inputs and writes the outputs in place, and
the call carries only the control message. The
server must enable it (``[shared_memory] enabled = true``) and the client must be on
its host; the registration ends with :meth:`SharedRegion.close` or the session.

    with connect(address) as board, board.session():
        with board.shared_memory(2 * 1024 * 256 * 4) as shm:
            v = shm.array((1024, 256), np.float32)
            i = shm.array((1024, 256), np.float32, offset_bytes=v.nbytes)
            v.array[:] = voltages
            result = board.mvm_shared(0, v, i)   # result.currents is i.array
"""

from __future__ import annotations

import mmap
import os
import secrets
from dataclasses import dataclass
from multiprocessing import shared_memory
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.client.session import session_call
from sidra.drivers import FailedPrecondition, InvalidArgument, SessionClosed, SidraError
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import session_pb2

SHM_DIR = "/dev/shm"
"""Where POSIX shared-memory objects live on Linux (the server opens them there too)."""

if TYPE_CHECKING:
    from sidra.client.remote import RemoteBoard

__all__ = ["SharedArray", "SharedRegion"]

_WIRE_TYPES = {np.dtype(dtype): code for code, dtype in tensors.DTYPES.items()}


@dataclass(frozen=True)
class SharedArray:
    """An array inside a registered shared-memory region: ``array`` is this process's
    view of it, ``offset_bytes`` where it starts in the region."""

    region: SharedRegion
    offset_bytes: int
    array: npt.NDArray[Any]

    def to_pb(self) -> pb.SharedTensor:
        """The request field that names it (board.proto, SharedTensor)."""
        return pb.SharedTensor(
            region=self.region.name,
            offset_bytes=self.offset_bytes,
            dtype=_WIRE_TYPES[self.array.dtype],  # type: ignore[arg-type]
            shape=self.array.shape,
        )


class SharedRegion:
    """A POSIX shared-memory object of ``size_bytes``, created by this process and
    registered in ``board``'s session as ``name``; use as a context manager."""

    def __init__(self, board: RemoteBoard, session_id: str, size_bytes: int, name: str) -> None:
        self.board = board
        self.session_id = session_id
        self.name = name
        self._memory: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=size_bytes
        )
        self.size_bytes = size_bytes
        # Arrays view a mapping of this object's own rather than SharedMemory's buffer,
        # which refuses to close while any view lives: this one is unmapped when the
        # last array viewing it goes, whenever the region is closed.
        fd = os.open(os.path.join(SHM_DIR, self._memory.name.lstrip("/")), os.O_RDWR)
        try:
            self._map: mmap.mmap | None = mmap.mmap(fd, size_bytes)
        finally:
            os.close(fd)
        self._memory.close()
        try:
            request = session_pb2.RegisterSharedMemoryRequest(
                session_id=session_id, name=name, key=self._memory.name, size_bytes=size_bytes
            )
            session_call(board.channel, "RegisterSharedMemory", request, board.timeout_s)
        except BaseException:
            self._release()
            raise

    @property
    def key(self) -> str:
        """The object's shm_open name."""
        if self._memory is None:
            raise FailedPrecondition(f"shared memory {self.name!r} is closed")
        return self._memory.name

    def array(
        self, shape: tuple[int, ...], dtype: Any = np.float32, *, offset_bytes: int = 0
    ) -> SharedArray:
        """An array of ``shape`` and ``dtype`` (float32, int8, int16, int32) at
        ``offset_bytes`` of the region, zero-copy in this process."""
        if self._memory is None:
            raise FailedPrecondition(f"shared memory {self.name!r} is closed")
        element = np.dtype(dtype)
        if element not in _WIRE_TYPES:
            raise InvalidArgument("dtype", element, "float32, int8, int16 or int32")
        count = int(np.prod(shape, dtype=np.int64))
        if offset_bytes < 0 or offset_bytes + count * element.itemsize > self.size_bytes:
            raise InvalidArgument(
                "offset_bytes",
                offset_bytes,
                f"an array within the region's {self.size_bytes} bytes",
            )
        assert self._map is not None  # open while _memory is
        view = np.frombuffer(self._map, element, count=count, offset=offset_bytes)
        return SharedArray(self, offset_bytes, view.reshape(shape))

    def close(self) -> None:
        """Unregisters the region (if its session is still open) and unlinks the object;
        views of it must not be used after."""
        if self._memory is None:
            return
        try:
            request = session_pb2.UnregisterSharedMemoryRequest(
                session_id=self.session_id, name=self.name
            )
            session_call(
                self.board.channel, "UnregisterSharedMemory", request, self.board.timeout_s
            )
        except (SessionClosed, FailedPrecondition):
            pass  # the session ended, and the registration with it
        except SidraError:
            self._release()
            raise
        self._release()

    def _release(self) -> None:
        memory, self._memory, self._map = self._memory, None, None
        if memory is not None:
            memory.unlink()  # the mapping stays until the last array viewing it goes

    def __enter__(self) -> SharedRegion:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def new_name() -> str:
    """A registration name unique enough within a session."""
    return f"shm-{secrets.token_hex(6)}"
