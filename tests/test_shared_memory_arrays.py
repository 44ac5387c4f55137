"""Arrays placed in a registered shared-memory region (SharedRegion.array) are checked
against the server's rules for a shared tensor where they are made: a dtype the server
takes, whole positive dimensions (no -1 to infer), an offset aligned to the element and
the array inside the region. Each refusal names the field, the value and what is
allowed; the region stays usable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import InvalidArgument, OutOfRange, open_board
from sidra.server import create_server
from sidra.server.settings import SharedMemorySettings

SIZE = 4096


@pytest.fixture(scope="module")
def board() -> Iterator[RemoteBoard]:
    with open_board("emu://?preset=ideal") as local:
        server, port = create_server(
            local, "127.0.0.1:0", shared_memory=SharedMemorySettings(enabled=True)
        )
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as remote, remote.session():
                yield remote
        finally:
            server.stop(grace=None)


@pytest.mark.parametrize(
    ("shape", "options", "field", "value"),
    [
        ((-1, 256), {}, "shape", [-1, 256]),
        ((4, -4), {}, "shape", [4, -4]),
        ((0, 16), {}, "shape", [0, 16]),
        ((), {}, "shape", []),
        ((4, 16.5), {}, "shape", [4, 16.5]),
        ((4, 16), {"dtype": np.float64}, "dtype", "float64"),
        ((4, 16), {"dtype": "uint8"}, "dtype", "uint8"),
        ((4, 16), {"offset_bytes": 2}, "offset_bytes", 2),
        ((4, 16), {"dtype": np.int32, "offset_bytes": 6}, "offset_bytes", 6),
        ((4, 16), {"offset_bytes": -4}, "offset_bytes", -4),
    ],
)
def test_a_bad_array_is_refused_naming_its_field(
    board: RemoteBoard, shape: Any, options: dict[str, Any], field: str, value: Any
) -> None:
    with board.shared_memory(SIZE) as shm:
        with pytest.raises(InvalidArgument) as refused:
            shm.array(shape, **options)
        assert refused.value.field == field
        assert refused.value.value == value
        assert shm.array((4, 16)).array.shape == (4, 16)  # the region is still usable


def test_an_array_past_the_region_is_out_of_range(board: RemoteBoard) -> None:
    with board.shared_memory(SIZE) as shm:
        with pytest.raises(OutOfRange) as refused:
            shm.array((4, 16), offset_bytes=SIZE - 128)
        assert refused.value.field == "offset_bytes"
        assert refused.value.value == f"{SIZE - 128} + 256 bytes"
        last = shm.array((2, 16), offset_bytes=SIZE - 128)  # exactly to the end: fine
        assert last.offset_bytes == SIZE - 128


def test_the_dtypes_a_shared_tensor_may_hold(board: RemoteBoard) -> None:
    with board.shared_memory(SIZE) as shm:
        for dtype in (np.float32, np.int8, np.int16, np.int32):
            placed = shm.array((2, 8), dtype, offset_bytes=np.dtype(dtype).itemsize * 2)
            assert placed.array.dtype == np.dtype(dtype)
