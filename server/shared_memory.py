"""Shared-memory tensors for clients on the server's host (session.proto, "Shared memory").

A client on the same host creates a POSIX shared-memory object (``shm_open``; Python's
``multiprocessing.shared_memory``), registers it once under a name in one of its
sessions (RegisterSharedMemory), and its MVM and TransposeMVM requests then name a
tensor inside it (``SharedTensor``: registration, byte offset, dtype, shape) instead of
carrying bytes: the server reads the inputs from the object (``pread``) and writes the
outputs into it (``pwrite``) through the descriptor it opened at registration. gRPC
stays the control plane.

Who may: only with ``[shared_memory] enabled = true`` in ``sidra serve``'s settings
(off by default), and only a caller whose connection comes from this host (a peer of
``unix:``, ``ipv4:127.x.x.x`` or ``ipv6:[::1]``); anyone else is refused
(PERMISSION_DENIED). A registration belongs to the principal and session that made it:
a request of another session naming it is refused (PERMISSION_DENIED), one naming no
registration of the caller's session (unregistered, or the session ended) is
FAILED_PRECONDITION. It ends with UnregisterSharedMemory or its session (CloseSession,
expiry, an admin's close), and the server closes its descriptor then.

Why no mmap. The object is opened by name under /dev/shm without following links, must
be a regular file owned by the server's user, and at least as large as the
registration (fstat). A client that unlinks it after registering changes nothing: the
descriptor keeps the memory until the registration ends. A client that *truncates* it
would make a mapping fault (SIGBUS, which kills the server) on the first page past the
new end, and no check before the copy can exclude a truncation racing the copy itself.
``pread`` and ``pwrite`` cannot fault: a read past the end comes back short, and the call
is refused (FAILED_PRECONDITION, "shrank"); a write past the end grows the object back.
What that costs is one copy of the inputs (the outputs were copied anyway), about 60–130
µs per MiB here, against a call of milliseconds. Any process of the server's user can
still change the tensors a call reads: hence off by default, for co-located clients
trusted like the server's own user.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers.codes import code_dtype
from sidra.drivers.errors import (
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    PermissionDenied,
)
from sidra.drivers.types import Region
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb

__all__ = [
    "SHM_DIR",
    "Mapping",
    "SharedSpan",
    "SharedMemoryDenied",
    "SharedMemoryStore",
    "is_local_peer",
]

SHM_DIR = "/dev/shm"
"""Where POSIX shared-memory objects live on Linux."""

_KEY = re.compile(r"^/?[A-Za-z0-9_.-]{1,200}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class SharedMemoryDenied(PermissionDenied):
    """The caller may not use shared memory, or not this registration (PERMISSION_DENIED)."""


def is_local_peer(peer: str) -> bool:
    """True when a gRPC peer (``context.peer()``) is on this host: ``unix:...``,
    ``ipv4:127.x.x.x:port`` or ``ipv6:[::1]:port``."""
    if peer.startswith("unix:"):
        return True
    if peer.startswith("ipv4:"):
        return peer[5:].startswith("127.")
    if peer.startswith("ipv6:"):
        host = peer[5:].rpartition(":")[0]
        return host in ("[::1]", "[0:0:0:0:0:0:0:1]")
    return False


@dataclass
class Mapping:
    """One registration: the descriptor of a client's shared-memory object."""

    name: str
    key: str
    size_bytes: int
    principal: str
    session_id: str
    fd: int
    closed: bool = False

    def __post_init__(self) -> None:
        # The descriptor lives as long as this object, not just until close(): a call
        # that looked the registration up just before it ended still reads this
        # object's file, never a descriptor number reused for another.
        weakref.finalize(self, os.close, self.fd)

    def tensor(self, field: str, offset: int, dtype: int, shape: tuple[int, ...]) -> SharedSpan:
        """``shape`` elements of wire type ``dtype`` at byte ``offset``, checked to lie
        inside the registration and be aligned to the element size."""
        element = tensors.DTYPES.get(dtype)
        if element is None or dtype not in tensors.SHARED_DTYPES:
            name = _dtype_name(dtype)
            raise InvalidArgument(f"{field}.dtype", name, tensors.SHARED_DTYPES_ALLOWED)
        if not shape or 0 in shape:
            raise InvalidArgument(f"{field}.shape", list(shape), "2 dimensions [n >= 1, n >= 1]")
        nbytes = int(np.prod(shape, dtype=np.int64)) * element.itemsize
        if offset % element.itemsize:
            raise InvalidArgument(
                f"{field}.offset_bytes", offset, f"a multiple of {element.itemsize} (the itemsize)"
            )
        if offset + nbytes > self.size_bytes:
            raise OutOfRange(
                f"{field}.offset_bytes",
                f"{offset} + {nbytes} bytes",
                f"within the {self.size_bytes} bytes of registration {self.name!r}",
            )
        return SharedSpan(self, offset, np.dtype(element), shape)

    def shrank(self, size: int) -> FailedPrecondition:
        return FailedPrecondition(
            f"shared memory {self.key!r} of registration {self.name!r} shrank to {size} "
            f"bytes, below the {self.size_bytes} registered: register it again"
        )

    def check_open(self) -> None:
        if self.closed:
            raise FailedPrecondition(f"shared memory {self.name!r} was unregistered")

    def close(self) -> None:
        """Ends the registration (a running call keeps the descriptor until it ends)."""
        self.closed = True


@dataclass(frozen=True, slots=True)
class SharedSpan:
    """A checked tensor inside a registration: read it, or write a result into it."""

    mapping: Mapping
    offset: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def read(self) -> npt.NDArray[Any]:
        """The tensor's current contents (a copy: ``pread``); refused when the object
        shrank below it."""
        self.mapping.check_open()
        array: npt.NDArray[Any] = np.empty(self.shape, self.dtype)
        buffer, done = array.data.cast("B"), 0
        while done < self.nbytes:
            got = os.preadv(self.mapping.fd, [buffer[done:]], self.offset + done)
            if got == 0:  # past the end: truncated after registering
                raise self.mapping.shrank(self.offset + done)
            done += got
        return array

    def write(self, array: npt.NDArray[Any]) -> None:
        """Writes ``array`` (this shape and dtype) into the tensor (``pwrite``)."""
        if array.shape != self.shape or array.dtype != self.dtype:
            raise TypeError(f"writing {array.dtype}{list(array.shape)} into "
                            f"{self.dtype}{list(self.shape)}")  # fmt: skip
        self.mapping.check_open()
        buffer, done = np.ascontiguousarray(array).data.cast("B"), 0
        while done < self.nbytes:
            done += os.pwrite(self.mapping.fd, buffer[done:], self.offset + done)


def _dtype_name(dtype: int) -> str | int:
    return pb.DType.Name(dtype) if dtype in pb.DType.values() else dtype


class SharedMemoryStore:
    """Every shared-memory registration of one server, by session.

    ``enabled``: the server offers shared memory at all. ``session_open(principal,
    session_id)`` raises unless that session is open and the principal's (the
    LeaseKeeper's registry renews it). ``max_per_session`` and ``max_bytes`` bound
    what one session may map."""

    def __init__(
        self,
        *,
        enabled: bool,
        session_open: Callable[[str, str], object],
        max_per_session: int = 16,
        max_bytes: int = 4 << 30,
        shm_dir: str = SHM_DIR,
    ) -> None:
        self.enabled = enabled
        self._session_open = session_open
        self.max_per_session = max_per_session
        self.max_bytes = max_bytes
        self._dir = shm_dir
        self._lock = threading.Lock()
        self._by_session: dict[str, dict[str, Mapping]] = {}

    def check_caller(self, peer: str) -> None:
        if not self.enabled:
            raise SharedMemoryDenied(
                "this server does not offer shared memory ([shared_memory] enabled = false "
                "in sidra serve's settings): send the tensors in the request"
            )
        if not is_local_peer(peer):
            raise SharedMemoryDenied(
                f"shared memory is only for clients on the server's host; the call came "
                f"from {peer[:80]!r}: send the tensors in the request"
            )

    def register(
        self, principal: str, session_id: str, peer: str, name: str, key: str, size_bytes: int
    ) -> Mapping:
        # The request's own fields first, then whether this caller may use it at all.
        if not session_id:
            raise InvalidArgument("session_id", "''", "the id of an open session of the caller")
        self._session_open(principal, session_id)
        self.check_caller(peer)
        if not _NAME.match(name):
            raise InvalidArgument("name", name[:120], "1 to 100 of A-Z a-z 0-9 _ . -")
        if not _KEY.match(key) or key.lstrip("/") in (".", ".."):  # those name folders
            raise InvalidArgument(
                "key", key[:220], "a POSIX shared-memory name: optional '/', then 1 to 200 "
                "of A-Z a-z 0-9 _ . - (not . or ..)"
            )  # fmt: skip
        if not 1 <= size_bytes <= self.max_bytes:
            raise OutOfRange("size_bytes", size_bytes, f"1 .. {self.max_bytes} bytes")
        with self._lock:
            mine = self._by_session.get(session_id, {})
            if name in mine:
                raise FailedPrecondition(
                    f"session {session_id[:8]}... already registered {name!r}: unregister it first"
                )
            if len(mine) >= self.max_per_session:
                raise FailedPrecondition(
                    f"session {session_id[:8]}... holds {len(mine)} registrations, the most "
                    f"one session may ([shared_memory] max_regions_per_session)"
                )
        mapping = self._map(name, key.lstrip("/"), size_bytes, principal, session_id)
        with self._lock:
            self._by_session.setdefault(session_id, {})[name] = mapping
        return mapping

    def _map(self, name: str, key: str, size: int, principal: str, session_id: str) -> Mapping:
        path = os.path.join(self._dir, key)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise FailedPrecondition(
                f"shared memory {key!r} cannot be opened ({exc.strerror}): create it "
                "(multiprocessing.shared_memory) before registering it"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise SharedMemoryDenied(
                    f"shared memory {key!r} is not a shared-memory object of the server's user"
                )
            if info.st_size < size:
                raise OutOfRange(
                    "size_bytes", size, f"at most the object's {info.st_size} bytes ({key!r})"
                )
        except BaseException:
            os.close(fd)
            raise
        return Mapping(name, key, size, principal, session_id, fd)

    def unregister(self, principal: str, session_id: str, peer: str, name: str) -> None:
        self._session_open(principal, session_id)
        self.check_caller(peer)
        with self._lock:
            mapping = self._by_session.get(session_id, {}).pop(name, None)
        if mapping is None:
            raise FailedPrecondition(
                f"session {session_id[:8]}... has no shared memory registered as {name!r}"
            )
        mapping.close()

    def lookup(self, principal: str, session_id: str | None, peer: str, name: str) -> Mapping:
        """The caller's registration ``name``: refused when it belongs to another session
        (PERMISSION_DENIED) or to none (FAILED_PRECONDITION)."""
        self.check_caller(peer)
        with self._lock:
            mapping = self._by_session.get(session_id or "", {}).get(name)
            owned_elsewhere = mapping is None and any(
                name in mine for sid, mine in self._by_session.items() if sid != session_id
            )
        if owned_elsewhere:
            raise SharedMemoryDenied(
                f"shared memory {name!r} is registered by another session: a request may name "
                "only its own session's registrations"
            )
        if mapping is None or mapping.principal != principal:
            raise FailedPrecondition(
                f"no shared memory registered as {name!r} in this call's session "
                f"({'none' if not session_id else session_id[:8] + '...'}): register it first "
                "(it ends with its session)"
            )
        return mapping

    def session_ended(self, session_id: str) -> None:
        """Ends every registration of a session that ended (closed or expired)."""
        with self._lock:
            mine = self._by_session.pop(session_id, {})
        for mapping in mine.values():
            mapping.close()

    def close(self) -> None:
        with self._lock:
            sessions = list(self._by_session)
        for session_id in sessions:
            self.session_ended(session_id)

    def session_registrations(self, session_id: str) -> int:
        with self._lock:
            return len(self._by_session.get(session_id, {}))

    def registrations(self) -> int:
        with self._lock:
            return sum(len(mine) for mine in self._by_session.values())


SHARED_RPCS = frozenset({"MVM", "TransposeMVM"})
"""RPCs whose tensors may be in shared memory."""


def names_shared_memory(message: Any) -> bool:
    """True when an MVM or TransposeMVM request names shared memory."""
    return bool(message.HasField("shared_inputs") or message.HasField("shared_outputs"))


def shared_pass(
    store: SharedMemoryStore | None,
    message: Any,
    request: Any,
    info: Any,
    principal: str,
    session_id: str | None,
    peer: str,
) -> tuple[Any, SharedSpan | None]:
    """``request`` (converted from ``message``) with its inputs read from shared memory,
    and the span its outputs go to (None: they go in the response), all checked before
    the board is touched: registrations, bounds, dtypes and shapes. With outputs in
    shared memory the request comes back validated against ``info`` (their shape follows
    from it), for the board to run without validating it again."""
    if store is None:
        raise SharedMemoryDenied("this server does not offer shared memory")
    if message.HasField("shared_inputs"):
        if message.HasField("voltages") or message.HasField("input_codes"):
            raise InvalidArgument(
                "shared_inputs", "set with voltages or input_codes",
                "one of voltages, input_codes and shared_inputs",
            )  # fmt: skip
        span = _span(store, message.shared_inputs, "shared_inputs", principal, session_id, peer)
        inputs = span.read()
        if message.shared_inputs.dtype == pb.DTYPE_FLOAT32:
            request = _replace(request, voltages=inputs)
        else:
            request = _replace(request, input_codes=inputs)
    outputs = None
    if message.HasField("shared_outputs"):
        outputs = _span(
            store, message.shared_outputs, "shared_outputs", principal, session_id, peer
        )
        checked = request.checked(info)  # the outputs' shape follows from the valid request
        region = checked.region
        width = type(checked).region_outputs(region or Region(0, 0, info.rows, info.cols))
        batch = len(checked.voltages if checked.input_codes is None else checked.input_codes)
        wanted = (batch, width)
        if outputs.shape != wanted:
            raise InvalidArgument("shared_outputs.shape", list(outputs.shape), f"{list(wanted)}")
        dtype = code_dtype(info.adc_bits) if request.output_codes else np.dtype(np.float32)
        if outputs.dtype != dtype:
            got = _dtype_name(message.shared_outputs.dtype)
            wire = "DTYPE_FLOAT32" if dtype == np.float32 else f"the ADC's codes, {dtype}"
            raise InvalidArgument("shared_outputs.dtype", got, wire)
        request = checked
    return request, outputs


def _span(
    store: SharedMemoryStore,
    tensor: Any,
    field: str,
    principal: str,
    session_id: str | None,
    peer: str,
) -> SharedSpan:
    mapping = store.lookup(principal, session_id, peer, tensor.region)
    shape = tuple(tensor.shape[:])
    if len(shape) != 2:
        raise InvalidArgument(f"{field}.shape", list(shape), "2 dimensions [n >= 1, n >= 1]")
    return mapping.tensor(field, tensor.offset_bytes, tensor.dtype, shape)


def _replace(request: Any, **changes: Any) -> Any:
    return dataclasses.replace(request, **changes)


_NO_CURRENTS = np.zeros((0, 0), np.float32)


def written(result: Any, outputs: SharedSpan) -> Any:
    """Writes a pass's outputs into their shared-memory span; the result to answer (its
    arrays left out: the response carries neither currents nor codes)."""
    source = result.output_codes if result.output_codes is not None else result.currents
    outputs.write(source)
    return _replace(result, currents=_NO_CURRENTS, output_codes=None)
