"""The link gauge and link error counters follow a serial board on a real pty.

The virtual board firmware runs behind the fault shim, which unplugs the cable
or restarts the board at a chosen frame; the serial driver is served as
``sidra serve --board serial://...`` serves it, with its metrics endpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
from observability_support import sample, served_with_metrics

from sidra.client import BoardReset, BoardUnavailable, connect
from sidra.drivers import open_board
from sidra.drivers.requests import PerturbMode, PerturbRequest
from sidra.drivers.serial import SerialDriver
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=32, cols=16)})
FAST = "timeout=0.05&retries=2&max_payload=256"
LINK_UP = sample("sidra_board_link_up")
LINK_DOWNS = sample("sidra_board_link_downs_total")
RESETS = sample("sidra_board_resets_total")


def test_link_gauge_follows_unplug_and_replug_and_errors_are_counted() -> None:
    v = np.zeros((1, 32), np.float32)
    with (
        serve_virtual_board(PROFILE, 1, faults=FaultConfig()) as board_server,
        open_board(f"{board_server.url}?{FAST}") as driver,
        served_with_metrics(driver) as served,
        connect(f"127.0.0.1:{served.port}") as remote,
    ):
        assert isinstance(driver, SerialDriver)
        shim = board_server.shim
        assert shim is not None
        remote.mvm(0, v)
        first = served.scrape()
        assert first[LINK_UP] == 1 and first[LINK_DOWNS] == 0 and first[RESETS] == 0
        info = driver.info
        described = {
            "model": info.model,
            "serial": info.serial_number,
            "firmware": info.firmware_version,
            "emulator_preset": "ideal",
        }
        assert first[sample("sidra_board_info", **described)] == 1

        shim.arm(unplug_in=1, unplug_s=float("inf"))
        with pytest.raises(BoardUnavailable):
            remote.mvm(0, v)
        served.wait_for(LINK_UP, 0)
        down = served.scrape()
        assert down[LINK_DOWNS] == 1
        timeouts = sample("sidra_board_link_errors_total", kind="timeout")
        assert down[timeouts] > 0
        # The server's link watcher keeps probing the dead link, so the count may move
        # between two readings: the metric is the driver's count, read in between.
        assert down[timeouts] <= driver.link_stats().timeouts <= served.scrape()[timeouts]

        shim.replug()  # the server's link watcher reconnects with nobody calling
        served.wait_for(LINK_UP, 1)
        remote.mvm(0, v)
        assert served.scrape()[LINK_DOWNS] == 1

        shim.arm(reset_in=1)  # the board restarts: its state is lost
        with pytest.raises(BoardReset):
            remote.mvm(0, v)
        after = served.scrape()
        assert after[RESETS] == 1 and after[LINK_UP] == 1


def test_a_lease_ended_after_the_board_restarted_counts_no_failed_restore() -> None:
    """The board power-cycled under a session that had perturbed its tile: the restart
    reset those cells, and ending the lease counted restore_failed, the event the alert
    "a tile could not be restored when its lease ended" watches."""
    restored = sample("sidra_lease_events_total", event="restored")
    failed = sample("sidra_lease_events_total", event="restore_failed")
    with (
        serve_virtual_board(PROFILE, 1, faults=FaultConfig()) as board_server,
        open_board(f"{board_server.url}?{FAST}") as driver,
        served_with_metrics(driver) as served,
        connect(f"127.0.0.1:{served.port}") as remote,
        remote.session(label="bench") as session,
    ):
        session.lease([1])
        remote.program(1, np.full((32, 16), 20.0, np.float32))
        remote.run(PerturbRequest(1, PerturbMode.APPLY, 4, 1.0, 1))
        board_server.reset_board()
        assert session.release([1]) == ()  # nothing restored: the restart reset the cells
        after = served.scrape()
        assert after[failed] == 0 and after[restored] == 0 and after[RESETS] == 1


def test_the_payload_gauge_shows_a_line_that_damages_long_frames() -> None:
    """A clean line keeps the payload negotiated; once it flips one bit in 10⁵ a whole
    tile programmed through the server still lands, and the gauge shows the frames the
    link came down to (docs/wire-protocol.md §4.6)."""
    payload = sample("sidra_board_link_payload_bytes")
    g = np.random.default_rng(0).uniform(2.0, 38.0, (256, 256)).astype(np.float32)
    with (
        serve_virtual_board(preset("ideal"), 1, faults=FaultConfig(seed=1)) as board_server,
        open_board(board_server.url) as driver,
        served_with_metrics(driver) as served,
        connect(f"127.0.0.1:{served.port}") as remote,
    ):
        shim = board_server.shim
        assert shim is not None
        remote.program(0, g)
        assert served.scrape()[payload] == 65_535
        shim.set_damage(FaultConfig(ber=1e-5, seed=1))
        remote.program(1, g)
        assert 256 <= served.scrape()[payload] <= 2048
        np.testing.assert_array_equal(remote.read_conductance(1).conductances, g)
