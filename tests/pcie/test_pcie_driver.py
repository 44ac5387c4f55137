"""PcieDriver on the virtual PCIe board: results, register discipline, queues in flight.

A real board process and a real mmapped file; only the BAR seam is wrapped (a
recording :class:`RegisterIO`) where a test needs to see the accesses.
"""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest
from board_data import dyadic_v
from pcie_support import FAST_S, G, RecordingBar, board, recorded

from sidra.drivers import PerturbationPoint, open_board
from sidra.drivers.errors import InvalidArgument
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import BarError, BarSizeError, FileBar
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.pcie.queues import IncompatibleBoard
from sidra.drivers.requests import MVMRequest, TransposeMVMRequest

OFF = r.OFFSET


def test_register_access_discipline_and_doorbell_order() -> None:
    """Every register access is one aligned access of the register's width; bulk copies
    never touch the register page; per command: window, then entry, then SQ_TAIL, then a
    STATUS read; CQ_HEAD is written only after the output window was read."""
    with board() as served:
        driver, bars = recorded(served)
        with driver:
            driver.program(0, G)
            v = np.random.default_rng(1).uniform(-0.2, 0.2, (5, 256)).astype(np.float32)
            assert np.allclose(driver.mvm(0, v).currents, v @ G, rtol=1e-5)
            driver.read_conductance(0)
            driver.stats()
        log = bars[0].log
    doorbells = [i for i, op in enumerate(log) if op[:2] == ("write32", OFF["SQ_TAIL"])]
    assert len(doorbells) >= 5
    for i in doorbells:
        entry = log[i - 1]
        assert entry[0] == "write_bytes" and r.SQ_OFFSET <= entry[1] < r.CQ_OFFSET
        assert log[i + 1][:2] == ("read32", OFF["STATUS"]), "a STATUS read flushes the doorbell"
    # Program, MVM, ReadConductance carry a payload: written into the window before the entry
    with_payload = [i for i in doorbells if log[i - 2][0] == "write_bytes"]
    assert len(with_payload) >= 3
    assert all(log[i - 2][1] >= r.WINDOWS_OFFSET for i in with_payload)
    heads = [i for i, op in enumerate(log) if op[:2] == ("write32", OFF["CQ_HEAD"])]
    for i in heads:
        assert log[i - 1][0] == "read_bytes" and log[i - 1][1] >= r.WINDOWS_OFFSET


def test_eight_commands_in_flight_complete_out_of_order() -> None:
    """With the board answering each burst in reverse, run_many still returns every
    result in request order, each the right V·G."""
    with board("reverse=1") as served:
        driver, bars = recorded(served)
        with driver:
            driver.program(0, G)
            rng = np.random.default_rng(2)
            vs = [rng.uniform(-0.2, 0.2, (1 + i, 256)).astype(np.float32) for i in range(8)]
            start = len(bars[0].log)
            results = driver.run_many([MVMRequest(0, v) for v in vs])
            log = bars[0].log[start:]
            order = [_cid(served.path, op) for op in log if op[0] == "read_bytes" and _cq(op[1])]
    for v, result in zip(vs, results, strict=True):
        assert np.allclose(result.currents, v @ G, rtol=1e-5)
    # 8 doorbells before the first completion was read: all in flight together
    first_reap = next(i for i, op in enumerate(log) if op[0] == "read_bytes" and _cq(op[1]))
    assert sum(op[:2] == ("write32", OFF["SQ_TAIL"]) for op in log[:first_reap]) == 8
    assert len(set(order)) == 8, order
    assert order != sorted(order), f"completions came in order {order}: not out of order"


def _cq(offset: int) -> bool:
    return r.CQ_OFFSET <= offset < r.WINDOWS_OFFSET


def _cid(path: str, op: tuple[str, int, int]) -> int:
    # The entry is still in the ring (the host never clears it): read its command id back.
    with open(path, "rb") as f:
        f.seek(op[1])
        cid: int = struct.unpack("<H", f.read(2))[0]
        return cid


def test_large_batches_pipeline_in_window_sized_chunks() -> None:
    """Batch 1024 at 256 inputs is one command; batch 3000 is three, in flight together;
    both equal V·G, and TransposeMVM too."""
    with board() as served:
        driver, bars = recorded(served)
        with driver:
            driver.program(0, G)
            rng = np.random.default_rng(3)
            for batch, commands in ((1024, 1), (3000, 3)):
                v = rng.uniform(-0.2, 0.2, (batch, 256)).astype(np.float32)
                start = len(bars[0].log)
                # chunks round like smaller matmuls: equal to float32 rounding, not bitwise
                assert np.allclose(driver.mvm(0, v).currents, v @ G, rtol=1e-5, atol=1e-3)
                log = bars[0].log[start:]
                doorbells = [op for op in log if op[:2] == ("write32", OFF["SQ_TAIL"])]
                assert len(doorbells) == commands
            (t,) = driver.run_many([TransposeMVMRequest(0, v)])
            assert np.allclose(t.currents, v @ G.T, rtol=1e-5, atol=1e-3)


def test_a_bar_file_of_the_wrong_size_is_refused_by_name(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "bar0")
    with open(path, "wb") as f:
        f.truncate(4096)
    with pytest.raises(BarSizeError) as caught:
        open_board(f"pcie+file://{path}")
    message = str(caught.value)
    assert path in message and "4096" in message and str(r.BAR_SIZE) in message
    assert (caught.value.size, caught.value.required) == (4096, r.BAR_SIZE)


def test_missing_file_and_bad_urls_say_what_to_do(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "none")
    with pytest.raises(BarError, match="sidra board serve --pcie-file"):
        open_board(f"pcie+file://{path}")
    with pytest.raises(InvalidArgument, match="pcie://DDDD:BB:DD.F"):
        open_board("pcie://01:00")
    with pytest.raises(BarError, match="no PCI device 0000:7f:1f.7"):
        open_board("pcie://0000:7f:1f.7")
    with pytest.raises(InvalidArgument, match="seconds"):
        open_board(f"pcie+file://{path}?timeout=-1")


def test_a_file_that_is_not_a_sidra_board_is_named(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "bar0")
    with open(path, "wb") as f:
        f.truncate(r.BAR_SIZE)
    with pytest.raises(IncompatibleBoard, match="MAGIC 0x00000000"):
        open_board(f"pcie+file://{path}")


def test_what_is_not_a_bar_file_is_named_without_a_traceback(tmp_path: os.PathLike[str]) -> None:
    """A folder (IsADirectoryError) and a device node (fstat size 0) are not BAR files;
    the hint is a new path, never serving a board over what is there."""
    with pytest.raises(BarError, match="a folder, not a virtual board's file"):
        open_board(f"pcie+file://{tmp_path}")
    with pytest.raises(BarError, match="/dev/null: not a regular file") as caught:
        open_board("pcie+file:///dev/null")
    assert "at a path that does not exist yet" in str(caught.value)


def test_urls_lower_case_the_address_and_want_an_absolute_file() -> None:
    """sysfs names devices in lower-case hex; ``pcie+file://dev/shm/b`` read "dev" as a
    host and the rest relative to wherever the command ran."""
    from urllib.parse import urlsplit

    assert PcieDriver._parsed(urlsplit("pcie://0000:0A:00.0"))[0] == "0000:0a:00.0"
    with pytest.raises(InvalidArgument, match="three slashes"):
        open_board("pcie+file://dev/shm/sidra.bar")
    # A file given to pcie://: named as typed (was "pcie:/dev/shm/x.bar"), pcie+file:// told.
    with pytest.raises(InvalidArgument) as caught:
        open_board("pcie:///dev/shm/x.bar")
    assert caught.value.value == "pcie:///dev/shm/x.bar"
    assert "a BAR file: pcie+file:///path" in str(caught.value)


def test_a_foreign_device_is_not_advised_to_be_unbound(tmp_path: os.PathLike[str]) -> None:
    """A mistyped address naming the root disk's controller: its BAR0 is not the SIDRA
    size, so the driver says it is not a board instead of how to unbind its driver."""
    from pathlib import Path

    from sidra.drivers.pcie.bar import SysfsBar

    root = Path(tmp_path)
    device = root / "0000:00:02.0"
    device.mkdir()
    (device / "resource").write_text("0x00000000fe000000 0x00000000fe003fff 0x40200\n")
    (device / "vendor").write_text("0x1af4\n")
    (device / "device").write_text("0x1001\n")
    (root / "virtio-pci").mkdir()
    (device / "driver").symlink_to(root / "virtio-pci")
    with pytest.raises(BarError) as caught:
        SysfsBar("0000:00:02.0", root=root)
    message = str(caught.value)
    assert "0x1af4:0x1001, driver 'virtio-pci') has a BAR0 of 16,384 bytes" in message
    assert "not a SIDRA board; check the address" in message and "unbind" not in message


@pytest.mark.parametrize(
    ("register", "value", "says"),
    [
        ("TILES", 0, "TILES: got 0, expected >= 1"),
        ("G_MIN_US", 50.0, "G_MAX_US: got 40.0, expected a finite conductance above g_min_us"),
        ("READ_VOLTAGE_MAX_V", float("nan"), "READ_VOLTAGE_MAX_V: got nan"),
        ("MVM_PASS_NS", -5.0, "MVM_PASS_NS: got -5.0, expected a finite number >= 0"),
    ],
)
def test_capabilities_no_board_can_have_are_refused_at_open(
    register: str, value: float, says: str
) -> None:
    """Blank or wrong firmware: refused naming the register when the board is opened,
    not as ``tile: got 0, expected an integer in 0 .. -1`` at every call."""
    from sidra.drivers.pcie.bar import f64_bits

    with board() as served:
        bar = FileBar(served.path)
        try:
            if register == "TILES":
                bar.write32(OFF[register], int(value))
            else:
                bar.write64(OFF[register], f64_bits(value))
        finally:
            bar.close()
        with pytest.raises(IncompatibleBoard, match="capabilities no board can have") as caught:
            open_board(served.url)
        assert says in str(caught.value)


def test_identity_that_is_not_text_is_named_as_such() -> None:
    """Blank identity flash reads 0xFF: named by its field and offset, no UnicodeDecodeError."""
    with board() as served:
        bar = FileBar(served.path)
        try:
            bar.write_bytes(r.IDENTITY_OFFSET, b"\xff" * r.IDENTITY_BYTES)
        finally:
            bar.close()
        with pytest.raises(IncompatibleBoard, match="IDENTITY model at 0x0100 is not UTF-8"):
            open_board(served.url)


def test_a_host_sleeps_on_the_interrupt_and_kicks_a_parked_board() -> None:
    """A batch MVM outlasts the host's spin: it arms IRQ_ARM and sleeps, and the board's
    interrupt wakes it with the right result. A board idle long enough parks (STATUS
    PARKED): the host's STATUS read after the doorbell sees it and kicks SQ_TAIL."""
    rng = np.random.default_rng(3)
    batch = rng.uniform(-0.2, 0.2, (1024, 256)).astype(np.float32)
    one = rng.uniform(-0.2, 0.2, (1, 256)).astype(np.float32)
    with board() as served:
        driver, bars = recorded(served)
        with driver:
            driver.program(0, G)
            for _ in range(6):
                assert np.allclose(driver.mvm(0, batch).currents, batch @ G, rtol=1e-5)
            kicked = False
            for _ in range(5):  # a parked board wakes every millisecond to look around
                time.sleep(0.05)
                start = len(bars[0].log)
                assert np.allclose(driver.mvm(0, one).currents, one @ G, rtol=1e-5)
                kicked = ("kick", OFF["SQ_TAIL"], 0) in bars[0].log[start:]
                if kicked:
                    break
        log = bars[0].log
    assert ("write32", OFF["IRQ_ARM"], 1) in log, "the host never slept on the interrupt"
    assert kicked, "a parked board was never kicked"


class _LosingBar(RecordingBar):
    """Loses the next ``lose`` kicks, as the unfenced race between a doorbell and a
    parking board can (docs/pcie.md, rule 9)."""

    lose = 0

    def kick(self, offset: int) -> None:
        if self.lose:
            self.lose -= 1
            self.log.append(("kick lost", offset, 0))
            return
        super().kick(offset)


def test_a_host_kicks_a_board_still_parked_again_before_it_sleeps() -> None:
    """The doorbell's kick lost: the host, its spin run out, finds the board still PARKED
    before it sleeps and kicks again, so the answer does not wait for the board's park to
    time out (IDLE_PARK_S once it has been idle a second)."""
    one = np.random.default_rng(5).uniform(-0.2, 0.2, (1, 256)).astype(np.float32)
    bars: list[_LosingBar] = []

    def opener() -> _LosingBar:
        bars.append(_LosingBar(FileBar(served.path)))
        return bars[-1]

    with board() as served, PcieDriver(opener, FAST_S) as driver:
        driver.program(0, G)
        time.sleep(1.2)  # idle over a second: the board parks IDLE_PARK_S at a time
        assert bars[0].read32(OFF["STATUS"]) & r.Status.PARKED
        bars[0].lose, start = 1, len(bars[0].log)
        assert np.allclose(driver.mvm(0, one).currents, one @ G, rtol=1e-5)
        kicks = [entry[0] for entry in bars[0].log[start:] if entry[0].startswith("kick")]
    assert kicks[:2] == ["kick lost", "kick"], kicks


def test_perturbed_mvm_whose_answer_outgrows_a_window_goes_as_pieces_by_its_points() -> None:
    """A PerturbedMVM whose answer [points, batch, cols] does not fit a slot window goes as
    pieces of whole points that each fit (8 points x 256 vectors: 2 MiB of currents, two
    pieces of 4 points), and one point's batch too large for a window in slices of it.
    The joined currents are the whole call's on the in-process emulator, bit for bit
    (ideal board); each piece restores the region once more."""
    v = dyadic_v(np.random.default_rng(8), (1200, 256))  # exact sums: any split, any order
    points = [PerturbationPoint(k, 1.0, 1 if k % 2 else -1) for k in range(8)]
    with open_board("emu://?preset=ideal&seed=1") as reference:
        reference.program(0, G)
        whole = reference.perturbed_mvm(0, v[:256], points)
        one = reference.perturbed_mvm(0, v, points[:1])
    with board() as served, open_board(served.url) as pcie:
        pcie.program(0, G)
        got = pcie.perturbed_mvm(0, v[:256], points)
        np.testing.assert_array_equal(got.currents, whole.currents)
        cells = pcie.info.rows * pcie.info.cols
        assert (whole.cells_written, got.cells_written) == (9 * cells, 10 * cells)
        assert got.saturated_outputs == whole.saturated_outputs
        got = pcie.perturbed_mvm(0, v, points[:1])  # 1200 x 256 inputs: over 1 MiB
        np.testing.assert_array_equal(got.currents, one.currents)
        assert got.cells_written == 2 * 2 * cells


def test_a_second_host_is_refused_while_the_first_drives_the_board() -> None:
    """Two hosts on one board's rings would take each other's completions: the second is
    refused naming why, the first goes on untouched, and once it closes the board is
    free again."""
    with board() as served:
        url = f"pcie+file://{served.path}"
        with open_board(url) as first:
            first.program(0, G)
            with pytest.raises(BarError, match="another host already drives this board"):
                open_board(url)
            v = np.full((1, 256), 0.1, np.float32)
            assert np.allclose(first.mvm(0, v).currents, v @ G, rtol=1e-5)
        with open_board(url) as second:  # the lock went with the first host's mapping
            assert np.allclose(second.read_conductance(0).conductances, G)
