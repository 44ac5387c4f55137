"""What a region-scoped pass saves on a serial link: bytes per layer pass, and line time.

A 64 + bias x 10 layer (65 rows x 10 columns, offset mapping) on a 256 x 256 tile
runs one batch-64 forward pass (MVM) and one backward pass (TransposeMVM) on the
virtual board on a pty, twice in one run: as the board takes it, each pass scoped
to the layer's region (docs/wire-protocol.md §6.1), and as a board without
REGION_PASS gets it, padded to the whole tile (what every pass cost before regions).
Prints the bytes each direction carried (the link's own counters, frames and
COBS included) and the line time they take at --baud (10 bits per byte on a
UART), and the padded/region ratio. The two runs give equal outputs (checked).

    .venv/bin/python scripts/region_bytes.py
    .venv/bin/python scripts/region_bytes.py --batch 256 --baud 115200 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from sidra.drivers import open_board
from sidra.drivers.serial.driver import SerialDriver
from sidra.drivers.wire.messages import Feature
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.training import AnalogLinear


def without_regions(driver: SerialDriver) -> None:
    """The host's view of the board as one built before regions: no REGION_PASS."""
    hello = driver._link.hello
    assert hello is not None
    driver._link.hello = dataclasses.replace(hello, features=hello.features & ~Feature.REGION_PASS)


def layer_pass_bytes(batch: int, padded: bool) -> tuple[int, int, np.ndarray]:
    """(bytes sent, bytes received, outputs) of one forward and one backward pass."""
    rng = np.random.default_rng(0)
    with serve_virtual_board(preset("ideal"), seed=1) as server, open_board(server.url) as board:
        assert isinstance(board, SerialDriver)
        layer = AnalogLinear(board, 0, inputs=64, outputs=10)
        layer.program(rng.uniform(-1, 1, layer.shape).astype(np.float32))
        if padded:
            without_regions(board)
        x = rng.normal(size=(batch, 64)).astype(np.float32)
        delta = rng.normal(size=(batch, 10)).astype(np.float32)
        before = board.link_stats()
        outputs = np.hstack([layer.forward(x), layer.backward(delta)])
        after = board.link_stats()
    return (
        after.bytes_sent - before.bytes_sent,
        after.bytes_received - before.bytes_received,
        outputs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="vectors per pass (default 64)")
    parser.add_argument("--baud", type=int, default=921_600, help="line rate, Bd (default 921600)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    options = parser.parse_args()
    sent_r, received_r, out_r = layer_pass_bytes(options.batch, padded=False)
    sent_p, received_p, out_p = layer_pass_bytes(options.batch, padded=True)
    np.testing.assert_allclose(out_r, out_p, rtol=1e-4, atol=1e-3)
    seconds_per_byte = 10 / options.baud
    figures = {
        "batch": options.batch,
        "baud": options.baud,
        "region_bytes": sent_r + received_r,
        "padded_bytes": sent_p + received_p,
        "region_line_s": round((sent_r + received_r) * seconds_per_byte, 4),
        "padded_line_s": round((sent_p + received_p) * seconds_per_byte, 4),
        "padded_over_region": round((sent_p + received_p) / (sent_r + received_r), 2),
    }
    if options.json:
        print(json.dumps(figures))
        return
    print(f"65 x 10 layer, forward + backward, batch {options.batch}, {options.baud} Bd")
    print(f"  region: {sent_r:>8} B sent {received_r:>8} B received  {figures['region_line_s']} s")
    print(f"  padded: {sent_p:>8} B sent {received_p:>8} B received  {figures['padded_line_s']} s")
    print(f"  padded / region: {figures['padded_over_region']}x")


if __name__ == "__main__":
    main()
