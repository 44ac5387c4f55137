"""The Python library as a notebook uses it: mistakes and ends a newcomer met (a review
of the client library), each with a clear error and nothing left half done."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import trustme

from sidra.client import RemoteBoard, TlsCredentials, connect
from sidra.drivers import InvalidArgument, open_board
from sidra.training import Dataset, PlacementError, SPSAOptions, train_softmax_spsa
from tests.jobs.jobs_support import serving


def test_closing_a_client_whose_server_went_away_keeps_the_real_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A session opened without a with block, the server gone: close() raised
    AttributeError ('NoneType' has no attribute 'id') over the BoardUnavailable, which
    an ``except SidraError`` did not catch, and the channel stayed open."""
    with serving(tmp_path / "state.sqlite3") as address:
        board = connect(address, timeout_s=5)
        board.session(label="notebook")
    with caplog.at_level(logging.WARNING, logger="sidra.client.remote"):
        board.close()  # the server is gone: logged, not raised
    assert any("closing session" in r.message for r in caplog.records)


def test_tls_files_may_be_named_by_str(tmp_path: Path) -> None:
    """TlsCredentials(root_ca="tls/ca.pem") raised AttributeError (no read_bytes)."""
    with pytest.raises(InvalidArgument) as caught:
        TlsCredentials(root_ca=str(tmp_path / "missing.pem")).channel_credentials()
    assert caught.value.field == "tls.root_ca"
    pem = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(pem))  # read as X.509 before connecting
    assert TlsCredentials(root_ca=str(pem)).channel_credentials() is not None


def test_spsa_on_arrays_without_their_scaling_is_refused_before_any_step() -> None:
    """A Dataset built from one's own arrays (no feature scaling) trained every step, then
    failed saving the model: refused before the board is touched, saying what to give."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    data = Dataset("mine", x[:30], y[:30], x[30:], y[30:])
    with open_board("emu://?preset=ideal&seed=1") as board:
        with pytest.raises(ValueError, match=r"feature_mean=\.\.\., feature_scale=\.\.\."):
            train_softmax_spsa(board, data, SPSAOptions(steps=50))
        assert board.stats().mvm_passes == 0  # nothing ran
    scaled = Dataset("mine", x[:30], y[:30], x[30:], y[30:],
                     feature_mean=np.zeros(4), feature_scale=np.ones(4))  # fmt: skip
    with open_board("emu://?preset=ideal&seed=1") as board:
        assert train_softmax_spsa(board, scaled, SPSAOptions(steps=5)).steps == 5


def test_an_mvm_given_no_inputs_says_which_it_needs(tmp_path: Path) -> None:
    """board.mvm(0) said 'voltages.dtype: got object'."""
    with (
        open_board("emu://?preset=ideal&seed=1") as local,
        pytest.raises(InvalidArgument, match="voltages .V, float32. or input_codes"),
    ):
        local.mvm(0)
    with serving(tmp_path / "state.sqlite3") as address, connect(address) as remote:
        assert isinstance(remote, RemoteBoard)
        with pytest.raises(InvalidArgument, match="or input_codes"):
            remote.mvm(0)


def test_the_placement_error_a_training_run_raises_is_exported() -> None:
    with open_board("emu://?preset=ideal&seed=1") as board:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((20, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64)
        data = Dataset("mine", x[:15], y[:15], x[15:], y[15:],
                       feature_mean=np.zeros(4), feature_scale=np.ones(4))  # fmt: skip
        with pytest.raises(PlacementError, match="tiles: got tile 9"):
            train_softmax_spsa(board, data, SPSAOptions(steps=5, tiles=(9,)))


def test_a_session_after_its_client_closed_is_closed_too(tmp_path: Path) -> None:
    """A session taken from a client used after the client's close(): its close raised
    gRPC's 'Cannot invoke RPC on closed channel!' though closing a closed session is no
    error, and a lease the same raw ValueError."""
    from sidra.drivers import BoardUnavailable

    with serving(tmp_path / "state.sqlite3") as address:
        board = connect(address)
        session = board.session(label="notebook")
        session.lease([0])
        board.close()  # closes the session on the server too
        assert session.close() == ()
        with pytest.raises(BoardUnavailable, match="is closed"):
            session.lease([0])
        with connect(address) as other:
            assert other.leases() == []  # the session and its lease ended on the server


def test_the_asyncio_client_alike(tmp_path: Path) -> None:
    import asyncio

    from sidra.client import aio
    from sidra.drivers import BoardUnavailable

    async def scenario(address: str) -> None:
        board = await aio.connect(address)
        session = await board.session(label="notebook")
        await board.close()
        assert await session.close() == ()
        with pytest.raises(BoardUnavailable, match="is closed"):
            await session.lease([0])

    with serving(tmp_path / "state.sqlite3") as address:
        asyncio.run(scenario(address))


def test_a_stream_used_after_its_client_closed_says_so(tmp_path: Path) -> None:
    """It blamed the server ('CANCELLED: the server ended the call unanswered: it is
    stopping or restarting')."""
    from sidra.drivers import BoardUnavailable

    v = np.zeros((1, 256), np.float32)
    with serving(tmp_path / "state.sqlite3") as address:
        board = connect(address)
        results = board.mvm_stream(0, itertools.repeat(v))  # endless: it cannot just end
        next(results)
        board.close()
        with pytest.raises(BoardUnavailable, match=r"is closed \(close\(\) was called"):
            for _ in results:  # those already answered, then the error
                pass


def test_codes_of_any_integer_type_work_alike_on_a_local_and_a_served_board(
    tmp_path: Path,
) -> None:
    """int64 codes (np.arange's, np.rint(...).astype(int)'s) worked over a server and were
    refused by the same board opened here: both take them, narrowed as the wire carries
    them; floats stay refused."""
    url = "emu://?preset=sidra-y1&seed=3"
    codes = (np.arange(256) % 7 - 3).reshape(1, 256)  # int64
    with open_board(url) as local:
        here = local.mvm(1, input_codes=codes, output_codes=True)
        same = local.mvm(1, input_codes=codes.astype(np.int8), output_codes=True)
        assert here.output_codes is not None and same.output_codes is not None
        with pytest.raises(InvalidArgument, match="input_codes.dtype"):
            local.mvm(1, input_codes=codes.astype(np.float32))
    with serving(tmp_path / "state.sqlite3", url) as address, connect(address) as remote:
        there = remote.mvm(1, input_codes=codes, output_codes=True)
        assert there.output_codes is not None
        assert there.output_codes.shape == here.output_codes.shape == (1, 256)


def test_a_session_dropped_unclosed_stops_beating_and_expires(tmp_path: Path) -> None:
    """A notebook cell run again: connect() and session() without close, the old board
    dropped. Its heartbeat thread kept the session alive for the life of the process, and
    the ninth run was refused (sessions per principal). Collected, it stops beating and
    the server lets it expire after its TTL."""
    import gc
    import threading
    import time

    def cell(address: str) -> str:
        board = connect(address)
        session = board.session(label="cell", ttl_s=1.0)
        session.lease([0])
        return session.id

    with serving(tmp_path / "state.sqlite3") as address:
        sid = cell(address)
        gc.collect()
        beats = [t for t in threading.enumerate() if t.name == f"sidra-session-{sid[:8]}"]
        deadline = time.monotonic() + 10.0
        while any(t.is_alive() for t in beats) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.is_alive() for t in beats)
        with connect(address) as other:
            while other.leases() and time.monotonic() < deadline:
                time.sleep(0.1)  # the TTL runs out on the server
            assert other.leases() == []


def test_an_asyncio_session_dropped_unclosed_expires_too(tmp_path: Path) -> None:
    import asyncio
    import gc
    import time

    from sidra.client import aio

    async def cell(address: str) -> asyncio.Task[None] | None:
        board = await aio.connect(address)
        session = await board.session(label="cell", ttl_s=1.0)
        await session.lease([0])
        return session._beat

    async def scenario(address: str) -> None:
        beat = await cell(address)
        assert beat is not None
        gc.collect()
        deadline = time.monotonic() + 10.0
        while not beat.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert beat.done()  # it found its session gone and ended
        other = await aio.connect(address)
        try:
            while await other.leases() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # the TTL runs out on the server
            assert await other.leases() == []
        finally:
            await other.close()

    with serving(tmp_path / "state.sqlite3") as address:
        asyncio.run(scenario(address))


def test_an_spsa_evaluator_can_be_written_from_sidra_training_alone() -> None:
    """Evaluator's signature names Point, and turning a point into weights needs
    perturbation_matrix: neither was importable from sidra.training, only from the
    private-looking sidra.training.spsa."""
    from sidra.training import SPSA, Point, SPSASettings, constant, perturbation_matrix, run

    target = np.arange(6, dtype=np.float32).reshape(2, 3) / 6

    def evaluate(x: np.ndarray, points: list[Point]) -> list[float]:
        return [float(np.sum((x + perturbation_matrix(p, x.shape) - target) ** 2)) for p in points]

    settings = SPSASettings(learning_rate=constant(0.05), perturbation=constant(0.05))
    optimizer = SPSA(np.zeros((2, 3)), settings, np.random.default_rng(0), steps=200)
    result = run(optimizer, evaluate)
    assert np.sum((result.x - target) ** 2) < 0.01 * np.sum(target**2)


def test_boards_sessions_and_leases_say_what_they_are_when_printed(tmp_path: Path) -> None:
    """A REPL showed <sidra.client.session.Session object at 0x7f...>: which session,
    which tiles, open or not had to be dug out of .state."""
    import asyncio

    from sidra.client import aio

    with serving(tmp_path / "state.sqlite3") as address:
        board = connect(address)
        assert repr(board) == f"<RemoteBoard {address}, no session>"
        with board.session(label="spsa run") as session, session.lease([1]) as lease:
            short = session.id[:8]
            assert repr(board) == f"<RemoteBoard {address}, session {short}>"
            assert repr(session) == (
                f"<Session {short} 'spsa run' of local: tiles [1], ttl 30 s, open>"
            )
            assert repr(lease) == f"<Lease tiles [1] of session {short}>"
        assert repr(session).endswith("tiles [], ttl 30 s, closed>")  # lease released first
        board.close()
        assert repr(board) == f"<RemoteBoard {address}, closed>"

        async def scenario() -> None:
            async with (
                await aio.connect(address) as board,
                await board.session(label="aio") as session,
                await session.lease(whole_board=True) as lease,
            ):
                short = session.id[:8]
                assert repr(board) == f"<AsyncRemoteBoard {address}, session {short}>"
                assert repr(session) == (
                    f"<AsyncSession {short} 'aio' of local: the whole board, ttl 30 s, open>"
                )
                assert repr(lease) == f"<AsyncLease the whole board of session {short}>"

        asyncio.run(scenario())


def test_array_parameters_are_typed_as_arrays_not_any() -> None:
    """board.mvm(0, voltages) was typed ``voltages: Any``: an IDE showed nothing, and mypy
    let ``board.mvm(0, region)`` through. Every board's array parameters take
    ``npt.ArrayLike`` (what np.asarray takes), on every client alike."""
    import typing
    from collections.abc import AsyncIterable, Iterable

    import numpy.typing as npt

    from sidra.client.aio import AsyncRemoteBoard
    from sidra.drivers import Board
    from sidra.drivers.pcie.driver import PcieDriver

    expected = {
        "voltages": {npt.ArrayLike, npt.ArrayLike | None},
        "input_codes": {npt.ArrayLike | None},
        "conductances": {npt.ArrayLike},
        "batches": {
            Iterable[npt.ArrayLike],
            Iterable[npt.ArrayLike] | AsyncIterable[npt.ArrayLike],
        },
    }
    checked = 0
    for cls in (Board, RemoteBoard, AsyncRemoteBoard, PcieDriver):
        for name in ("program", "mvm", "transpose_mvm", "mvm_stream", "perturbed_mvm"):
            hints = typing.get_type_hints(getattr(cls, name))
            for parameter, allowed in expected.items():
                if parameter in hints:
                    assert hints[parameter] in allowed, (cls.__name__, name, parameter)
                    checked += 1
    assert checked == 4 * 7  # program 1, mvm and transpose_mvm 2 each, stream 1, perturbed 1


def test_what_a_client_script_names_is_importable_from_the_client_packages(
    tmp_path: Path,
) -> None:
    """perturbed_mvm takes PerturbationPoints, which only sidra.drivers exported (Region and
    rademacher, its neighbours, are in sidra.client); the asyncio session and lease types
    a script annotates with were only in sidra.client.aio_session."""
    import asyncio

    import sidra.client
    import sidra.client.aio
    from sidra.client import PerturbationPoint, Region, rademacher
    from sidra.client.aio import AsyncLease, AsyncSession

    assert {"PerturbationPoint"} <= set(sidra.client.__all__)
    assert {"AsyncSession", "AsyncLease"} <= set(sidra.client.aio.__all__)
    region = Region(0, 0, 8, 4)
    g = np.full((8, 4), 10.0, np.float32)
    v = np.full((3, 8), 0.1, np.float32)
    points = [PerturbationPoint(42, 0.5, +1), PerturbationPoint(42, 0.5, -1)]
    with serving(tmp_path / "state.sqlite3") as address:
        with connect(address) as board:
            board.program(0, g)
            currents = board.perturbed_mvm(0, v, points, region).currents
        delta = rademacher(42, region.shape)
        np.testing.assert_allclose(currents[0], v @ (g + 0.5 * delta), rtol=1e-5)
        np.testing.assert_allclose(currents[1], v @ (g - 0.5 * delta), rtol=1e-5)

        async def scenario() -> None:
            async with await sidra.client.aio.connect(address) as board:
                session = await board.session(label="typed")
                assert isinstance(session, AsyncSession)
                assert isinstance(await session.lease([0]), AsyncLease)
                await session.close()

        asyncio.run(scenario())


def test_every_field_of_an_operation_result_says_what_it_is() -> None:
    """ProgramReport's verify_iterations and unconverged_cells, MVMResult's
    saturated_outputs, PerturbReport's clipped_cells (the cells where G ± cΔ does not
    hold) were bare names: what they meant was in board.proto only."""
    import dataclasses

    from sidra.drivers import (
        MVMResult,
        PerturbedMVMResult,
        PerturbReport,
        ProgramReport,
        ReadResult,
    )
    from sidra.drivers.attribute_docs import attribute_docs

    for cls in (ProgramReport, ReadResult, MVMResult, PerturbReport, PerturbedMVMResult):
        documented = attribute_docs(cls)
        bare = [f.name for f in dataclasses.fields(cls) if not documented.get(f.name)]
        assert not bare, (cls.__name__, bare)
