"""The command line end to end: ``sidra board serve --pty`` + ``sidra serve --board serial://``.

Two real processes and a real pty between them; the same gRPC session against
``sidra serve --board emu://`` with the same preset and seed must give
bit-identical answers (sidra-y1 is noisy, so this also proves no command ran twice).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from cli_support import process, run_sidra, served, session, sidra_json


def test_sidra_serve_on_a_serial_pty_matches_emu() -> None:
    """Every RPC through sidra serve -> serial:///dev/pts/N -> sidra board serve --pty equals
    the same calls through sidra serve -> emu:// (same preset, same seed), bit for bit."""
    # --serial: named as emu:// names the board of that seed, so GetBoardInfo compares too.
    board_args = ("--pty", "--preset", "sidra-y1", "--seed", "6", "--serial", "EMU-Y1-6")
    with process("board", "serve", *board_args) as (url, _):
        assert re.fullmatch(r"serial:///dev/pts/\d+", url), url
        with served(url) as board:
            over_serial = session(board, 400)
    with served("emu://?preset=sidra-y1&seed=6") as board:
        in_process = session(board, 400)
    for got, want in zip(over_serial, in_process, strict=True):
        if isinstance(got, np.ndarray):
            assert np.array_equal(got, want)
        else:
            assert got == want


def test_board_serve_over_tcp_with_faults() -> None:
    """--tcp serves socket:// URLs; --faults puts the shim on the line and calls still
    succeed (with frames small enough for the bit-error rate: 1 KiB payloads)."""
    with (
        process(
            "board",
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--preset",
            "ideal",
            "--faults",
            "ber=1e-5,drop=0.02,dup=0.02,seed=3",
        ) as (url, _),  # fmt: skip
    ):
        assert re.fullmatch(r"socket://127\.0\.0\.1:\d+", url), url
        with served(url + "?timeout=0.05&retries=8&max_payload=1024") as board:
            g = np.full((256, 256), 5.0, np.float32)
            board.program(1, g)
            for _ in range(30):
                currents = board.mvm(1, np.full((1, 256), 0.125, np.float32)).currents
                assert np.all(currents == np.float32(0.125 * 5.0 * 256))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pty", "--tcp", "127.0.0.1:0"], "exactly one of --pty or --tcp"),
        (["--pty", "--faults", "ber=2"], "expected 0 .. 1"),
        (["--pty", "--faults", "jitter=1"], "jitter=1"),
        (["--pty", "--preset", "nope"], "one of"),
        (["--tcp", "127.0.0.1:\u00b2"], "expected HOST:PORT"),  # '²' is no port number
        (["--pcie-file", "/dev/shm/never-made", "--no-report-profile"], "--pty and --tcp"),
    ],
)
def test_board_serve_rejects_bad_options(args: list[str], message: str) -> None:
    result = run_sidra("board", "serve", *args, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr


def test_bench_serial_json() -> None:
    """sidra bench serial --json: one JSON object with the acceptance keys; a full-tile
    Program goes over the wire at >= 0.99 efficiency."""
    report = sidra_json("bench", "serial", "--programs", "2", "--mvms", "200")
    keys = {"program_s", "payload_mb_s", "raw_pty_mb_s", "wire_efficiency", "mvm_p50_us",
            "mvm_p99_us"}  # fmt: skip
    assert keys <= report.keys()
    assert report["wire_efficiency"] >= 0.99
    assert report["program_s"] > 0 and report["mvm_p50_us"] <= report["mvm_p99_us"]


def test_bench_serial_on_a_noisy_line_against_a_clean_one() -> None:
    """--faults: the Programs go over a line that flips one bit in 10⁵ and over a clean one
    in the same run; the report says what the link came down to and what it met; a spec
    the board would refuse is refused first, naming it."""
    report = sidra_json("bench", "serial", "--programs", "2", "--mvms", "20",
                        "--faults", "ber=1e-5,seed=4")  # fmt: skip
    assert report["faults"] == "ber=1e-5,seed=4"
    assert report["clean_program_s"] > 0
    # Computed before program_s and clean_program_s were rounded to µs: within 0.01.
    slowdown = report["program_s"] / report["clean_program_s"]
    assert report["program_slowdown"] == pytest.approx(slowdown, abs=0.011)
    assert 256 <= report["payload_limit"] <= 2048 and report["payload_changes"] >= 1
    assert report["damaged_attempts"] > 0 and report["exchanges"] > 0
    assert (
        sidra_json("bench", "serial", "--programs", "1", "--mvms", "10")
        .keys()
        .isdisjoint({"faults", "program_slowdown"})
    )
    refused = run_sidra("bench", "serial", "--faults", "ber=2")
    assert refused.returncode == 2 and "fault ber: got 2.0, expected 0 .. 1" in refused.stderr
