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

import contextlib
import mmap
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.client.aio_session import call_session
from sidra.client.options import checked_count
from sidra.client.session import session_call
from sidra.drivers import FailedPrecondition, InvalidArgument, OutOfRange, SessionClosed
from sidra.drivers.types import Cost, MVMResult, Region
from sidra.drivers.validation import is_integer
from sidra.hil import tensors
from sidra.hil.convert import region_to_pb
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import session_pb2

SHM_DIR = "/dev/shm"
"""Where POSIX shared-memory objects live on Linux (the server opens them there too)."""

if TYPE_CHECKING:
    from sidra.client.aio import AsyncRemoteBoard
    from sidra.client.remote import RemoteBoard

__all__ = [
    "AsyncSharedRegion",
    "SharedArray",
    "SharedObject",
    "SharedRegion",
    "pass_message",
    "pass_result",
]

_WIRE_TYPES = {np.dtype(dtype): code for code, dtype in tensors.DTYPES.items()}
_VIEW_TYPES = frozenset(tensors.DTYPES[code] for code in tensors.SHARED_DTYPES)
"""What a shared tensor may hold (tensors.SHARED_DTYPES), as numpy dtypes."""


def _view_dtype(dtype: Any) -> np.dtype[Any]:
    """``dtype`` as a numpy dtype a shared tensor may hold, else InvalidArgument."""
    allowed = "float32, int8, int16 or int32"
    try:
        element: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        raise InvalidArgument("dtype", dtype, allowed) from None
    if element not in _VIEW_TYPES:
        raise InvalidArgument("dtype", element.name, allowed)
    return element


def _dims(shape: Any) -> tuple[int, ...]:
    """``shape`` as whole dimensions of at least one element each, else InvalidArgument
    (no -1 to infer: an array's size is what the caller places in the region)."""
    allowed = "one or more whole dimensions of at least 1 element each, e.g. (1024, 256)"
    try:
        dims = tuple(shape)
    except TypeError:
        raise InvalidArgument("shape", shape, allowed) from None
    if not dims or not all(is_integer(d) and d >= 1 for d in dims):
        raise InvalidArgument("shape", list(dims), allowed)
    return tuple(int(d) for d in dims)


@dataclass(frozen=True)
class SharedArray:
    """An array inside a registered shared-memory region: ``array`` is this process's
    view of it, ``offset_bytes`` where it starts in the region."""

    region: SharedObject
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


class SharedObject:
    """A POSIX shared-memory object of ``size_bytes`` this process created, to be
    registered as ``name`` in the session ``session_id`` (:class:`SharedRegion`, and
    the asyncio client's :class:`AsyncSharedRegion`): its arrays, and its end."""

    def __init__(self, session_id: str, size_bytes: int, name: str) -> None:
        size_bytes = checked_count("size_bytes", size_bytes, 1, "bytes")
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
        # The server's rules for a shared tensor (session.proto), applied here so that a
        # mistake is named where it is made, not at the first call naming the array.
        element = _view_dtype(dtype)
        dims = _dims(shape)
        if not is_integer(offset_bytes) or offset_bytes < 0:
            raise InvalidArgument("offset_bytes", offset_bytes, "a byte offset >= 0")
        if offset_bytes % element.itemsize:
            allowed = f"a multiple of {element.itemsize} (the size of a {element.name})"
            raise InvalidArgument("offset_bytes", offset_bytes, allowed)
        count = int(np.prod(dims, dtype=np.int64))
        nbytes = count * element.itemsize
        if offset_bytes + nbytes > self.size_bytes:  # as the server words it
            raise OutOfRange(
                "offset_bytes",
                f"{offset_bytes} + {nbytes} bytes",
                f"within the {self.size_bytes} bytes of region {self.name!r}",
            )
        assert self._map is not None  # open while _memory is
        view = np.frombuffer(self._map, element, count=count, offset=offset_bytes)
        return SharedArray(self, offset_bytes, view.reshape(dims))

    def _register_request(self) -> session_pb2.RegisterSharedMemoryRequest:
        return session_pb2.RegisterSharedMemoryRequest(
            session_id=self.session_id, name=self.name, key=self.key, size_bytes=self.size_bytes
        )

    @contextlib.contextmanager
    def _unregistering(self) -> Iterator[session_pb2.UnregisterSharedMemoryRequest]:
        """Yields the request that ends the registration, for the caller to send, then
        unlinks the object whatever the answer: a session that has ended took the
        registration with it, which is no error; any other error is raised."""
        try:
            yield session_pb2.UnregisterSharedMemoryRequest(
                session_id=self.session_id, name=self.name
            )
        except (SessionClosed, FailedPrecondition):
            pass
        finally:
            self._release()

    def unlink(self) -> None:
        """Unlinks the object without a word to the server: its session has ended, and
        the registration with it. Nothing after the first call; views of it must not
        be used after."""
        self._release()

    def _release(self) -> None:
        memory, self._memory, self._map = self._memory, None, None
        if memory is not None:
            memory.unlink()  # the mapping stays until the last array viewing it goes


class SharedRegion(SharedObject):
    """A POSIX shared-memory object of ``size_bytes``, created by this process and
    registered in ``board``'s session as ``name``; use as a context manager."""

    def __init__(self, board: RemoteBoard, session_id: str, size_bytes: int, name: str) -> None:
        super().__init__(session_id, size_bytes, name)
        self.board = board
        try:
            request = self._register_request()
            session_call(board.channel, "RegisterSharedMemory", request, board.timeout_s)
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """Unregisters the region (if its session is still open) and unlinks the object;
        views of it must not be used after."""
        if self._memory is None:
            return
        with self._unregistering() as request:
            session_call(
                self.board.channel, "UnregisterSharedMemory", request, self.board.timeout_s
            )

    def __enter__(self) -> SharedRegion:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSharedRegion(SharedObject):
    """:class:`SharedRegion` for the asyncio client (``await board.shared_memory(size)``):
    registered before it is handed out, ``async with`` (or ``await close()``) ends it."""

    board: AsyncRemoteBoard

    @classmethod
    async def open(
        cls, board: AsyncRemoteBoard, session_id: str, size_bytes: int, name: str
    ) -> AsyncSharedRegion:
        """A new object of ``size_bytes`` registered in ``board``'s session as ``name``."""
        region = cls(session_id, size_bytes, name)
        region.board = board
        try:
            request = region._register_request()
            await call_session(board.channel, "RegisterSharedMemory", request, board.timeout_s)
        except BaseException:
            region._release()
            raise
        return region

    async def close(self) -> None:
        """Unregisters the region (if its session is still open) and unlinks the object;
        views of it must not be used after."""
        if self._memory is None:
            return
        with self._unregistering() as request:
            await call_session(
                self.board.channel, "UnregisterSharedMemory", request, self.board.timeout_s
            )

    async def __aenter__(self) -> AsyncSharedRegion:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def new_name() -> str:
    """A registration name unique enough within a session."""
    return f"shm-{secrets.token_hex(6)}"


def pass_message(
    tile: int,
    inputs: SharedArray,
    outputs: SharedArray,
    region: Region | None,
    output_codes: bool,
    transpose: bool,
) -> pb.MVMRequest | pb.TransposeMVMRequest:
    """The request message of a pass whose inputs and outputs are in shared memory;
    InvalidArgument when either is not an array placed in a region (``shm.array``)."""
    for field, placed in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(placed, SharedArray):
            allowed = "a SharedArray placed in a registered region (shm.array(shape))"
            raise InvalidArgument(field, type(placed).__name__, allowed)
    message = (pb.TransposeMVMRequest if transpose else pb.MVMRequest)(
        tile=tile, output_codes=output_codes,
        shared_inputs=inputs.to_pb(), shared_outputs=outputs.to_pb(),
    )  # fmt: skip
    if region is not None:
        message.region.CopyFrom(region_to_pb(region))
    return message


def pass_result(reply: Any, outputs: SharedArray, output_codes: bool) -> MVMResult:
    """The result of a shared-memory pass answered ``reply``: its outputs are
    ``outputs.array`` (as the ADC's codes with ``output_codes``, currents made from
    them)."""
    codes = outputs.array if output_codes else None
    currents = outputs.array
    if codes is not None:
        currents = codes.astype(np.float32)
        currents *= np.float32(reply.adc_step_ua)
    cost = Cost(reply.cost.time_ns, reply.cost.energy_nj)
    return MVMResult(
        currents, reply.saturated_outputs, cost, codes, reply.dac_step_v, reply.adc_step_ua
    )
