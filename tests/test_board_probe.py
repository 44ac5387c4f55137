"""``sidra board probe URL`` against the in-process emulator, a virtual board on a pty,
the virtual PCIe board, and URLs that cannot be opened."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import pytest
from cli_support import run_sidra, sidra_json

import sidra.drivers
from sidra.cli.board_probe import format_probe, probe
from sidra.drivers import open_board
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board


def _expected(url: str) -> dict[str, object]:
    with open_board(url) as board:
        info = board.info
    return {
        "model": info.model,
        "serial_number": info.serial_number,
        "firmware_version": info.firmware_version,
        "emulator_preset": info.emulator_preset,
        "tiles": info.tile_count,
        "rows": info.rows,
        "g_max_us": info.g_max_us,
        "adc_bits": info.adc_bits,
        "mvm_pass_ns": info.timing.mvm_pass_ns,
    }


def _flat(report: dict[str, object]) -> dict[str, object]:
    ident, caps = report["identification"], report["capabilities"]
    assert isinstance(ident, dict) and isinstance(caps, dict)
    return {**ident, **caps, **caps["timing"]}


def test_emulator_json_matches_board_info() -> None:
    url = "emu://?preset=sidra-y1&seed=3"
    report = sidra_json("board", "probe", url)
    assert report["url"] == url
    assert report["transport"] == "EmulatorDriver"
    flat = _flat(report)
    for key, value in _expected(url).items():
        assert flat[key] == value, key
    assert report["link"] == {}  # in process: no link


def test_emulator_text_names_units() -> None:
    result = run_sidra("board", "probe", "emu://?preset=ideal")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "array         4 tiles x 256 rows x 256 cols" in text
    for unit in ("µS", " V", " ns", " W", "bits"):
        assert unit in text, unit
    assert "link          none (in-process board)" in text


def test_format_lists_every_link_counter() -> None:
    report = probe("emu://?preset=ideal")
    report["link"] = {"up": True, "crc_errors": 2, "device": {"rx_frames": 7}}
    text = format_probe(report)
    assert "\nlink\n" in text
    assert "\n  up               True" in text
    assert "\n  crc_errors       2" in text
    assert "\n  device           the board's own, every host's: rx_frames 7" in text


def test_serial_board_reports_link_counters() -> None:
    with serve_virtual_board(preset("ideal"), seed=1) as server:
        report = sidra_json("board", "probe", server.url)
    assert report["transport"] == "SerialDriver"
    assert report["identification"]["emulator_preset"] == "ideal"
    assert report["capabilities"]["rows"] == 256
    link = report["link"]
    assert link["up"] is True and "link_up" not in link  # said once
    assert link["exchanges"] >= 1  # HELLO at least
    assert link["bytes_received"] > 0 and link["crc_errors"] == 0
    assert link["device"]["rx_frames"] >= 1  # the board's own counters of the same link
    assert link["max_payload"] >= 256


def test_serial_link_figures_say_their_units() -> None:
    """A bench reads the probe's link section: bytes say B, times s, and the board's own
    counters say whose they are (they were bare numbers: 'payload_limit 65535', and
    'device rx_frames ...' read as this host's)."""
    with serve_virtual_board(preset("ideal"), seed=1) as server:
        result = run_sidra("board", "probe", server.url)
    assert result.returncode == 0, result.stderr
    rows = {
        line.split()[0]: line.split(None, 1)[1]
        for line in result.stdout.split("\nlink\n", 1)[1].splitlines()
    }
    assert rows["payload_limit"] == "65535 B" and rows["max_payload"] == "65535 B"
    assert rows["bytes_sent"].endswith(" B") and rows["bytes_received"].endswith(" B")
    assert rows["timeout_base_s"].endswith(" s")
    assert rows["up"] == "True" and rows["exchanges"].isdigit()  # counts stay bare
    assert rows["device"].startswith("the board's own, every host's: rx_frames ")
    assert re.search(r", rx_bytes \d+ B, tx_bytes \d+ B,", rows["device"]), rows["device"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"socket://127.0.0.1:{_closed_port()}", "Connection refused"),
        ("serial:///dev/no-such-sidra-tty", "No such file or directory"),
        ("nope://board", "a URL starting with one of"),
        ("emu://?preset=nonsense", "expected one of"),
    ],
    ids=["refused", "no-device", "unknown-scheme", "bad-option"],
)
def test_unreachable_board_says_what_is_wrong(url: str, says: str) -> None:
    for args in (("board", "probe", url), ("board", "probe", url, "--json")):
        result = run_sidra(*args)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"sidra board probe {url}: ")
        assert says in result.stderr
        assert result.stdout == ""


@pytest.fixture
def pcie_board() -> Iterator[str]:
    """A virtual PCIe board in its own process; yields its pcie+file:// URL."""
    from sidra.emulator.pcie import serve_virtual_pcie_board

    with serve_virtual_pcie_board(preset("ideal"), seed=1) as board:
        yield board.url


@pytest.mark.skipif(
    "pcie+file" not in sidra.drivers.schemes(), reason="the PCIe driver is not installed"
)
def test_pcie_board(pcie_board: str) -> None:
    report = sidra_json("board", "probe", pcie_board)
    assert report["identification"]["emulator_preset"] == "ideal"
    assert report["capabilities"]["cols"] == 256
    link = report["link"]
    assert link, "the PCIe driver reports no link state"
    assert link["queue_depth"] >= 8
    assert link["link_up"] is True
    assert "READY" in link["status_bits"]
    assert link["error_code"] == 0
    assert "HOST_RESULTS" in link["features"].split("|")  # flags by name
    assert link["host_memory_bytes"] > 0  # the board writes large results into it
    json.dumps(report)  # plain JSON all the way down


def test_a_served_board_shows_the_call_sizes_its_service_announces() -> None:
    from sidra.server.app import create_server
    from sidra.server.settings import LimitsSettings

    with open_board("emu://?preset=ideal&seed=1") as driver:
        limits = LimitsSettings(max_batch=64, max_message_mb=2)
        server, port = create_server(driver, "127.0.0.1:0", limits=limits)
        server.start()
        try:
            report = probe(f"grpc://127.0.0.1:{port}")
        finally:
            server.stop(grace=None).wait()
    assert report["link"]["max_batch"] == 64
    assert report["link"]["message_limit_bytes"] == 2 * 2**20
    assert "max_batch           64" in format_probe(report)


@pytest.mark.parametrize("transport", ["serial", "pcie"])
def test_a_probe_shows_the_times_the_host_allows(transport: str) -> None:
    """A board slower than the host's reference times declares them (HELLO, or the PCIe
    registers PROGRAM_CELL_NS ...): the probe shows what the host took from it, which is
    what a lab engineer bringing up a slow firmware checks first."""
    from sidra.drivers.wire.device_times import CommandTimes
    from sidra.emulator.pcie import serve_virtual_pcie_board

    slow = CommandTimes(program_cell_ns=300_000, command_us=2_000)
    serve = serve_virtual_board if transport == "serial" else serve_virtual_pcie_board
    with serve(preset("ideal"), 1, slow=slow) as board:
        report = sidra_json("board", "probe", board.url)
        text = run_sidra("board", "probe", board.url).stdout
    assert report["allowed_times"]["program_cell_us"] == pytest.approx(300)
    assert report["allowed_times"]["command_us"] == pytest.approx(2000)
    assert report["allowed_times"]["cell_us"] == pytest.approx(1)  # not declared: the host's
    assert "allowed       Program 300 µs/cell" in text
    assert "+ 2000 µs/command" in text
    plain = probe("emu://?preset=ideal")
    assert "allowed_times" not in plain  # an in-process board has no link to time
