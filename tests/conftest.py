"""Shared fixtures, and the board URLs the conformance suite runs on.

Board URLs (pyserial's ``PORT``): ``--board-url URL`` (repeatable) and the
``SIDRA_HW_URL`` environment variable name the boards the conformance suite
(``tests/conformance/``, ``pytest -m conformance``) runs on. Without them it runs
on the default boards: the in-process emulator (``emu://?preset=ideal&seed=1``),
the virtual board firmware on a real pseudo-terminal, the virtual PCIe board
in its own process behind a mapped BAR file (both ideal preset, seed 1), and two
small boards in process (SMALL_GEOMETRY, 2 tiles of 32 x 16, and SMALLEST_GEOMETRY,
1 tile of 8 x 8; ideal, seed 1), so that every geometry the suite derives from the
board's info is run small too.
A test asks for a board through the ``board_target`` fixture (directly or through
the conformance fixtures); it is then parametrised over every target, marked
``conformance``, and, if marked ``fresh_board``, kept only for targets this run
can open at power-up (see :class:`BoardTarget`).

Outside the conformance suite ``ideal_driver`` (and ``served``, ``remote`` and
``stub`` on it) is always the ideal board with seed 1, in process or over a pty,
whatever URL is given: training and service tests that need exact arithmetic
and a fresh board use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import grpc
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import Board, BoardDriver, open_board
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server
from sidra.training.bundled_cache import CACHE_DIR_ENV

IDEAL_URL = "emu://?preset=ideal&seed=1"
HW_URL_ENV = "SIDRA_HW_URL"


@pytest.fixture(autouse=True, scope="session")
def _folders_of_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every ``sidra serve`` the tests start keeps its state in this run's temporary
    folder, never in the user's data folder, and every data set split is kept in its
    own cache folder, never read from one an earlier version filled (the variables
    reach child processes)."""
    folders = {
        "SIDRA_STATE__PATH": str(tmp_path_factory.mktemp("state") / "state.sqlite3"),
        CACHE_DIR_ENV: str(tmp_path_factory.mktemp("cache")),
    }
    before = {key: os.environ.get(key) for key in folders}
    os.environ.update(folders)
    yield
    for key, value in before.items():
        if value is None:
            del os.environ[key]
        else:
            os.environ[key] = value


SMALL_GEOMETRY = (2, 32, 16)
"""Tiles, rows and columns of the small default target (the serial small board's,
tests/serial/test_serial_faults.py): not square, so that rows and columns taken the one
for the other show, and fewer tiles than the suite's four, so that tests share them
(board_checks.tile_of)."""

SMALLEST_GEOMETRY = (1, 8, 8)
"""The smallest board the suite runs on fully (board_checks.SMALLEST_TILE), one tile: the
default target that keeps it so."""

CONVERTER_PRESET = "sidra-y1"
"""The preset of the boards with converters (8-bit DAC, 12-bit ADC) the converter-code
tests open beside an ideal target (BoardTarget.open_with_converters)."""


@contextmanager
def ideal_board_on_a_pty(preset_name: str = "ideal") -> Iterator[BoardDriver]:
    """The virtual board firmware (ideal preset, seed 1) on a fresh pty, opened by URL."""
    # Imported here: only the default boards are built from the emulator.
    from sidra.emulator import preset
    from sidra.emulator.firmware import serve_virtual_board

    with (
        serve_virtual_board(preset(preset_name), seed=1) as server,
        open_board(server.url) as driver,
    ):
        assert isinstance(driver, BoardDriver)
        yield driver


@contextmanager
def small_board(
    preset_name: str = "ideal", size: tuple[int, int, int] = SMALL_GEOMETRY
) -> Iterator[BoardDriver]:
    """The emulator in process with the preset's physics on ``size`` (tiles, rows,
    columns), seed 1."""
    from sidra.emulator import preset
    from sidra.emulator.config import Geometry
    from sidra.emulator.driver import EmulatorDriver

    tiles, rows, cols = size
    geometry = Geometry(tiles=tiles, rows=rows, cols=cols)
    profile = preset(preset_name).model_copy(update={"geometry": geometry})
    with EmulatorDriver(profile, seed=1) as driver:
        yield driver


@contextmanager
def ideal_board_on_pcie(preset_name: str = "ideal") -> Iterator[BoardDriver]:
    """The virtual PCIe board (ideal preset, seed 1) in its own process, opened by URL."""
    from sidra.emulator import preset
    from sidra.emulator.pcie import serve_virtual_pcie_board

    with serve_virtual_pcie_board(preset(preset_name), seed=1) as board, open_board(board.url) as d:
        assert isinstance(d, BoardDriver)
        yield d


@dataclass(frozen=True)
class BoardTarget:
    """A board the conformance suite runs on: a URL, or the default virtual board on a pty.

    ``opens_fresh``: every :meth:`open` gives a new board at power-up (emu:// builds
    a new emulator; the pty default starts new firmware). A serial://, socket:// or
    grpc:// board exists before the run and may have been used: it is opened once.
    """

    id: str
    url: str
    """Board URL for ``open_board``; empty for a default virtual board (``virtual``)."""
    virtual: str = "pty"
    """Which default virtual board an empty URL means: "pty" (serial), "pcie", "small" or
    "smallest" (in process, SMALL_GEOMETRY or SMALLEST_GEOMETRY)."""

    @property
    def opens_fresh(self) -> bool:
        return not self.url or urlsplit(self.url).scheme == "emu"

    def open(self) -> AbstractContextManager[Board]:
        if not self.url:
            return VIRTUAL_BOARDS[self.virtual]()
        return open_board(self.url)

    def open_with_converters(self) -> AbstractContextManager[Board]:
        """A board with DAC and ADC on the same transport, for a target that
        :attr:`opens_fresh`: a default target's board with the CONVERTER_PRESET instead of
        the ideal one; an emu:// URL's own board (the ideal one's with CONVERTER_PRESET)."""
        assert self.opens_fresh, "a board named by URL is opened once (shared_board)"
        if not self.url:
            return VIRTUAL_BOARDS[self.virtual](CONVERTER_PRESET)
        if self.url == IDEAL_URL:
            return open_board(f"emu://?preset={CONVERTER_PRESET}&seed=1")
        return open_board(self.url)


VIRTUAL_BOARDS = {
    "pty": ideal_board_on_a_pty,
    "pcie": ideal_board_on_pcie,
    "small": small_board,
    "smallest": partial(small_board, size=SMALLEST_GEOMETRY),
}
"""The default virtual boards by BoardTarget.virtual: each takes the preset's name."""

DEFAULT_TARGETS = (
    BoardTarget("emu", IDEAL_URL),
    BoardTarget("pty", ""),
    BoardTarget("pcie", "", "pcie"),
    BoardTarget("small", "", "small"),
    BoardTarget("smallest", "", "smallest"),
)

_TARGETS = pytest.StashKey[list[BoardTarget]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("sidra").addoption(
        "--board-url",
        action="append",
        default=[],
        metavar="URL",
        help=(
            "run the conformance suite on the board at URL (repeatable; e.g. "
            "serial:///dev/ttyUSB0, socket://host:port, grpc://host:port, "
            f"emu://?preset=sidra-y1&seed=3); {HW_URL_ENV} is honoured too. "
            "Default: emu://, the virtual board on a pty, the virtual PCIe board and "
            "boards of 2 x 32 x 16 and 1 x 8 x 8 in process, ideal preset, seed 1."
        ),
    )


def board_targets(config: pytest.Config) -> list[BoardTarget]:
    """The boards named by --board-url and SIDRA_HW_URL, or the default boards."""
    urls: list[str] = list(config.getoption("board_url"))
    env = os.environ.get(HW_URL_ENV, "").strip()
    if env and env not in urls:
        urls.append(env)
    return [BoardTarget(url, url) for url in urls] or list(DEFAULT_TARGETS)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_TARGETS] = board_targets(config)


def pytest_report_header(config: pytest.Config) -> str:
    targets = config.stash[_TARGETS]
    names = {
        "pty": "virtual board on a pty",
        "pcie": "virtual PCIe board",
        "small": "a {} x {} x {} board in process".format(*SMALL_GEOMETRY),
        "smallest": "a {} x {} x {} board in process".format(*SMALLEST_GEOMETRY),
    }
    return "conformance boards: " + ", ".join(t.url or names[t.virtual] for t in targets)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "board_target" in metafunc.fixturenames:
        targets = metafunc.config.stash[_TARGETS]
        metafunc.parametrize(
            "board_target", targets, ids=[t.id for t in targets], indirect=True, scope="session"
        )


@pytest.hookimpl(tryfirst=True)  # before -m selects on the conformance mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Board tests are conformance tests; power-up tests go only to boards opened fresh."""
    kept, dropped = [], []
    for item in items:
        target = _target_of(item)
        if target is not None:
            item.add_marker(pytest.mark.conformance)
            if item.get_closest_marker("fresh_board") and not target.opens_fresh:
                # A board that existed before the run is not at power-up: the test does not
                # apply to it (deselected, not skipped: it says nothing about the board).
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _target_of(item: pytest.Item) -> BoardTarget | None:
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("board_target") if callspec is not None else None
    return target if isinstance(target, BoardTarget) else None


@pytest.fixture(scope="session")
def board_target(request: pytest.FixtureRequest) -> BoardTarget:
    """The board a conformance test runs on (parametrised by pytest_generate_tests)."""
    target: BoardTarget = request.param
    return target


# -- the ideal board outside the conformance suite ------------------------------------------


@pytest.fixture(params=["emu", "serial"])
def ideal_driver(request: pytest.FixtureRequest) -> Iterator[BoardDriver]:
    """The ideal board, seed 1, fresh: in process, or over a pty to the virtual board."""
    if request.param == "emu":
        with open_board(IDEAL_URL) as driver:
            assert isinstance(driver, BoardDriver)
            yield driver
        return
    with ideal_board_on_a_pty() as driver:
        yield driver


@pytest.fixture
def served(ideal_driver: BoardDriver) -> Iterator[tuple[BoardDriver, int]]:
    """The ideal board served on a free loopback port: (driver, port)."""
    server, port = create_server(ideal_driver, "127.0.0.1:0")
    server.start()
    yield ideal_driver, port
    server.stop(grace=None)


@pytest.fixture
def remote(served: tuple[BoardDriver, int]) -> Iterator[RemoteBoard]:
    """A client connected over real gRPC to the ideal board."""
    with connect(f"127.0.0.1:{served[1]}") as board:
        yield board


@pytest.fixture
def stub(served: tuple[BoardDriver, int]) -> Iterator[pb_grpc.BoardServiceStub]:
    """A raw generated stub, for requests the client library would never send."""
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield pb_grpc.BoardServiceStub(channel)
