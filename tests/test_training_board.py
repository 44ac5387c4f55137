"""SPSA with the board in the loop: the analog layer mapping and a short real training run."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.client import RemoteBoard
from sidra.drivers import BoardDriver, InvalidArgument, open_board
from sidra.training import (
    AnalogLinear,
    HostHeldEvaluator,
    OnBoardEvaluator,
    SPSAOptions,
    SPSAStep,
    TrainingRecord,
    load_dataset,
    train_softmax_spsa,
)
from sidra.training.options import (
    CompareOptions,
    EqPropOptions,
    FFOptions,
    JobOptions,
    LastLayerOptions,
    MLPOptions,
    PATJobOptions,
    PATOptions,
    RecoveryOptions,
)
from sidra.training.records import array_from_json


def test_layer_forward_equals_host_matmul_on_ideal_board(remote: RemoteBoard) -> None:
    """Offset mapping + digital reference subtraction give exactly [x, 1]·W (float32)."""
    rng = np.random.default_rng(0)
    layer = AnalogLinear(remote, 2, inputs=64, outputs=10)
    w = rng.uniform(-1, 1, layer.shape).astype(np.float32)
    layer.program(w)
    x = rng.normal(size=(32, 64)).astype(np.float32)
    x_clipped = np.clip(x, -layer.input_clip, layer.input_clip)
    expected = np.hstack([x_clipped, np.ones((32, 1), np.float32)]) @ w
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    ("args", "field", "allowed"),
    [
        ((99, 8, 3), "tiles", "tile indices in 0 .. 3, each once"),
        ((-1, 8, 3), "tiles", "tile indices in 0 .. 3, each once"),
        (([1, 1], 300, 3), "tiles", "tile indices in 0 .. 3, each once"),
        ((0, 0, 3), "inputs", "an integer >= 1"),
        ((0, 8, 0), "outputs", "an integer >= 1"),  # was an IndexError
        ((0, 2.5, 3), "inputs", "an integer >= 1"),
    ],
)
def test_a_layer_the_board_cannot_hold_is_refused_naming_why(
    args: tuple[Any, Any, Any], field: str, allowed: str
) -> None:
    with open_board("emu://?preset=ideal") as board, pytest.raises(InvalidArgument) as caught:
        AnalogLinear(board, args[0], inputs=args[1], outputs=args[2])
    assert (caught.value.field, caught.value.allowed) == (field, allowed)


def test_a_layer_refuses_arrays_of_another_shape_and_leaves_the_board_as_it_was() -> None:
    """A weight matrix without its bias row programmed the rows it had and left the bias
    row stale; a single vector [inputs] was broadcast into one output per element."""
    with open_board("emu://?preset=ideal") as board:
        layer = AnalogLinear(board, 1, inputs=8, outputs=3)
        w = np.random.default_rng(0).uniform(-1, 1, layer.shape).astype(np.float32)
        layer.program(w)
        before = board.read_conductance(1).conductances
        bad_calls = [
            (lambda: layer.program(w[:8]), "weights.shape", [8, 3]),
            (lambda: layer.forward(np.zeros(8)), "x.shape", [8]),
            (lambda: layer.forward(np.zeros((4, 9))), "x.shape", [4, 9]),
            (lambda: layer.forward(np.zeros((0, 8))), "x.shape", [0, 8]),
            (lambda: layer.forward(np.zeros((2, 8)), program=w.T), "weights.shape", [3, 9]),
            (lambda: layer.backward(np.ones(3)), "delta.shape", [3]),
            (lambda: layer.perturbed_forward(np.zeros((2, 7)), [(1, 0.1, 1)]), "x.shape", [2, 7]),
            # Named as passed: the board would name the voltages they drive (and the rows).
            (lambda: layer.forward(np.full((2, 8), np.nan)), "x",
             "16 NaN/Inf values (first at [0, 0])"),
            (lambda: layer.backward(np.array([[0.0, np.inf, 1.0]])), "delta",
             "1 NaN/Inf values (first at [0, 1])"),
        ]  # fmt: skip
        for call, field, shape in bad_calls:
            with pytest.raises(InvalidArgument) as caught:
                call()
            assert (caught.value.field, caught.value.value) == (field, shape)
        np.testing.assert_array_equal(board.read_conductance(1).conductances, before)
        assert layer.forward([[0.5] * 8]).shape == (1, 3)  # nested lists are arrays too


def test_board_perturbation_is_weight_perturbation(remote: RemoteBoard) -> None:
    """Perturb by c in weight units on the board == host weights W ± cΔ(seed)."""
    from sidra.drivers import rademacher

    rng = np.random.default_rng(1)
    layer = AnalogLinear(remote, 0, inputs=8, outputs=3)
    w = rng.uniform(-0.5, 0.5, layer.shape).astype(np.float32)
    layer.program(w)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    xb = np.hstack([x, np.ones((5, 1), np.float32)])
    delta = rademacher(1234, layer.shape)
    for sign in (1, -1):
        layer.perturb(1234, 0.25, sign)
        np.testing.assert_allclose(layer.forward(x), xb @ (w + sign * 0.25 * delta), atol=1e-3)
    layer.restore()
    np.testing.assert_allclose(layer.forward(x), xb @ w, atol=1e-3)


def test_on_board_evaluator_programs_only_on_change(ideal_driver: BoardDriver) -> None:
    data = load_dataset("digits")
    layer = AnalogLinear(ideal_driver, 0, data.features, data.classes)
    evaluator = OnBoardEvaluator(layer, data.x_train, data.y_train, 64, np.random.default_rng(0))
    w = np.zeros(layer.shape, np.float32)
    evaluator(w, [((1, 0.1),), ((1, -0.1),)])
    evaluator(w, [((2, 0.1),), ((2, -0.1),)])
    assert evaluator.programs == 1
    evaluator(w + 0.01, [((3, 0.1),), ((3, -0.1),)])
    assert evaluator.programs == 2
    assert layer.mvm_calls == 6  # one forward per point
    assert layer.ledger.loss_evaluations == 6


def test_host_held_evaluator_matches_on_board_losses_on_ideal_board(
    ideal_driver: BoardDriver,
) -> None:
    """Board pass of W_prog + digital remainder == the board holding W ± cΔ (ideal preset)."""
    data = load_dataset("digits")
    layer = AnalogLinear(ideal_driver, 0, data.features, data.classes)
    host = HostHeldEvaluator(layer, data.x_train, data.y_train, 64, np.random.default_rng(0), 3)
    board = OnBoardEvaluator(layer, data.x_train, data.y_train, 64, np.random.default_rng(0))
    w0 = np.random.default_rng(1).uniform(-0.5, 0.5, layer.shape).astype(np.float32)
    w1 = w0 + 0.05
    host(w0, [()])  # programs w0
    board.batches.draw()  # both evaluators now draw the same next minibatch
    points = [((7, 0.2),), ((7, -0.2),), ()]
    host_losses = host(w1, points)  # board still holds w0: remainder is digital
    assert host.programs == 1
    board_losses = board(w1, points)  # programs w1 and perturbs on the board
    np.testing.assert_allclose(host_losses, board_losses, rtol=1e-4)


def test_host_held_programs_every_k_updates(ideal_driver: BoardDriver) -> None:
    data = load_dataset("digits")
    layer = AnalogLinear(ideal_driver, 0, data.features, data.classes)
    host = HostHeldEvaluator(layer, data.x_train, data.y_train, 16, np.random.default_rng(0), 5)
    w = np.zeros(layer.shape, np.float32)
    for k in range(12):
        host(w + 0.01 * k, [((k, 0.1),), ((k, -0.1),)])
    assert host.programs == 3  # at the start, after update 5 and after update 10
    # The minibatches of the 5 calls each programming serves go through the board in
    # one MVM call, drawn ahead: 3 calls for 12 steps.
    assert layer.mvm_calls == 3


def _host_losses(
    layer: AnalogLinear, steps: Callable[[HostHeldEvaluator, Callable[..., list[float]]], None]
) -> tuple[list[list[float]], int]:
    """The losses of the evaluator calls ``steps`` makes (through the function it is
    given) on a host-mode evaluator of ``layer``, and the MVM calls they took."""
    data = load_dataset("digits")
    host = HostHeldEvaluator(layer, data.x_train, data.y_train, 16, np.random.default_rng(0), 4)
    losses, mvm_calls = [], 0

    def call(weights: np.ndarray, points: list) -> list[float]:  # type: ignore[type-arg]
        nonlocal mvm_calls
        before = layer.mvm_calls
        losses.append(host(weights, points))
        mvm_calls += layer.mvm_calls - before
        return losses[-1]

    steps(host, call)
    return losses, mvm_calls


@pytest.mark.parametrize("final_at", [None, 2, 5])
def test_minibatches_drawn_ahead_give_the_losses_of_one_pass_per_call(
    ideal_driver: BoardDriver, monkeypatch: pytest.MonkeyPatch, final_at: int | None
) -> None:
    """Host mode's passes made ahead (one MVM call per Program) give the losses of one
    pass per call (PASSES_PER_CALL at 1: nothing drawn ahead), the same minibatches in
    the same order, also when an accuracy measurement programs the board between two
    calls (``final_at``): the passes drawn ahead are made again (ideal board)."""
    from sidra.training import evaluators

    data = load_dataset("digits")
    layer = AnalogLinear(ideal_driver, 0, data.features, data.classes)
    w = np.random.default_rng(1).uniform(-0.5, 0.5, layer.shape).astype(np.float32)

    def steps(host: HostHeldEvaluator, call: Callable[..., list[float]]) -> None:
        for k in range(9):
            weights = w + np.float32(0.01 * k)
            if k == final_at:
                host.predict(weights - 0.005, data.x_test[:8], final=True)  # programs
            call(weights, [((k, 0.1),), ((k, -0.1),), ()])

    ahead, ahead_calls = _host_losses(layer, steps)
    monkeypatch.setattr(evaluators, "PASSES_PER_CALL", 1)
    one_by_one, one_by_one_calls = _host_losses(layer, steps)
    np.testing.assert_allclose(ahead, one_by_one, rtol=1e-5)
    assert one_by_one_calls == 9
    # Programs at calls 0, 4, 8 (every 4 updates): passes drawn ahead for 4, 4 and 1
    # calls. A Program between two calls (final_at 2: mid-way; 5: after call 4 drew
    # its 4, so calls 5-7 are made again in one call) costs one more MVM call.
    assert ahead_calls == (3 if final_at is None else 4)


def test_short_spsa_run_learns_digits_over_grpc(remote: RemoteBoard, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """300 SPSA steps over real gRPC lift digits well above chance (10 %)."""
    data = load_dataset("digits")
    record = train_softmax_spsa(
        remote, data, SPSAOptions(steps=300, seed=0, a=0.5, c=0.2, eval_every=100)
    )
    assert record.loss_evaluations == 600
    # 600 training forwards, then accuracy measured with 8 passes per input (the
    # eval_read_repeats default) in calls of at most 1,024 passes, 128 inputs: 3 checkpoint
    # evaluations and the final test of 540 rows in 5 calls each, train accuracy (1,257
    # rows) in 10.
    assert record.mvm_calls == 600 + 3 * 5 + 5 + 10
    assert record.test_accuracy > 0.5
    assert [c.step for c in record.checkpoints] == [100, 200, 300]
    assert np.mean(record.losses[-50:]) < np.mean(record.losses[:50])
    assert record.device_writes > 0
    folder = record.save(tmp_path / "run")
    for name in ("settings.json", "summary.json", "steps.csv", "checkpoints.csv", "plot.png"):
        assert (folder / name).stat().st_size > 0


def test_host_held_mode_spends_far_fewer_writes() -> None:
    data = load_dataset("digits")
    writes = {}
    for mode in ("board", "host"):
        with open_board("emu://?preset=sidra-y1&seed=3") as board:
            record = train_softmax_spsa(board, data, SPSAOptions(steps=100, seed=3, mode=mode))
        writes[mode] = record.device_writes
    assert writes["host"] * 5 < writes["board"]


def test_calibrated_run_counts_calibration_evaluations() -> None:
    data = load_dataset("digits")
    with open_board("emu://?preset=ideal&seed=4") as board:
        record = train_softmax_spsa(board, data, SPSAOptions(steps=10, seed=4, a=None, c=None))
    assert record.loss_evaluations == 20 + 10 + 2 * 25  # steps + noise samples + ĝ₀ samples
    assert record.settings["a"] > 0 and record.settings["c"] >= 0.1


def test_training_is_reproducible_for_a_seed() -> None:
    data = load_dataset("digits")

    def run() -> np.ndarray:
        with open_board("emu://?preset=sidra-y1&seed=5") as board:
            weights = train_softmax_spsa(board, data, SPSAOptions(steps=30, seed=5)).weights
            assert weights is not None
            return weights

    np.testing.assert_array_equal(run(), run())


@dataclass(frozen=True)
class _Resumed:
    whole: TrainingRecord
    """The run uninterrupted."""
    resumed: TrainingRecord
    """The run stopped, then resumed from its last checkpoint."""
    saved: dict[str, Any]
    """The checkpoint as the stopped run left it."""

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The resumed run's final weights and the uninterrupted run's."""
        assert self.resumed.weights is not None and self.whole.weights is not None
        return self.resumed.weights, self.whole.weights


def _stop_and_resume(
    dataset: str,
    options: SPSAOptions,
    path: Path,
    *,
    stop_at: int,
    every: int,
    resume_options: SPSAOptions | None = None,
    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> _Resumed:
    """``options`` trained on ``dataset`` once through, and once stopped at step
    ``stop_at`` with a checkpoint at ``path`` every ``every`` steps and resumed from it
    (under ``resume_options``, the checkpoint first rewritten by ``edit``), each run on
    a fresh ideal board."""
    data = load_dataset(dataset)

    def board() -> BoardDriver:
        return open_board("emu://?preset=ideal&seed=0")

    whole = train_softmax_spsa(board(), data, options)
    with pytest.raises(KeyboardInterrupt):
        train_softmax_spsa(
            board(), data, options, on_step=_stop_at(stop_at), checkpoint=path,
            checkpoint_every=every,
        )  # fmt: skip
    saved = json.loads(path.read_text())
    if edit is not None:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    resumed = train_softmax_spsa(
        board(), data, resume_options or options, checkpoint=path, resume=True
    )
    return _Resumed(whole, resumed, saved)


@pytest.mark.parametrize("mode", ["board", "host"])
def test_a_run_that_loses_its_board_keeps_its_steps_to_resume_from(
    mode: str, tmp_path: Path
) -> None:
    """The board unplugged mid-run (the virtual serial board's fault, at the lowest
    layer): the steps made are saved at the last step boundary, and resumed on a board
    again they end as the uninterrupted run does. Before, the run and its record were
    lost with the board."""
    from sidra.drivers import BoardUnavailable
    from sidra.emulator import preset
    from sidra.emulator.firmware import serve_virtual_board
    from sidra.emulator.firmware.faults import FaultConfig
    from sidra.training.stopping import RunInterrupted

    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    options = SPSAOptions(steps=20, seed=1, mode=mode, eval_every=5)
    whole = train_softmax_spsa(open_board("emu://?preset=ideal&seed=0"), data, options)
    # Host frames into the run: host mode's steps make fewer (its Programs are batched).
    unplug = FaultConfig(unplug_after={"board": 40, "host": 21}[mode], unplug_s=math.inf)
    with (
        serve_virtual_board(preset("ideal"), 0, faults=unplug) as server,
        open_board(f"{server.url}?timeout=0.05&retries=1") as board,
        pytest.raises(RunInterrupted) as lost,
    ):
        train_softmax_spsa(board, data, options, checkpoint=path)
    assert isinstance(lost.value.cause, BoardUnavailable)
    saved = json.loads(path.read_text())
    assert 1 <= lost.value.steps == saved["optimizer"]["k"] < 20
    assert len(saved["losses"]) == lost.value.steps
    resumed = train_softmax_spsa(
        open_board("emu://?preset=ideal&seed=0"), data, options, checkpoint=path, resume=True
    )
    assert resumed.weights is not None and whole.weights is not None
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    # Host mode passes the minibatches up to the next Program in one call: resumed
    # between two Programs, its calls batch them otherwise, and the product rounds
    # differently in the last bit of float32.
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-6)
    assert resumed.loss_evaluations == whole.loss_evaluations


@pytest.mark.parametrize("mode", ["board", "host"])
def test_interrupted_run_resumes_from_its_checkpoint(mode: str, tmp_path: Path) -> None:
    """A run stopped after step 13 and resumed from its step-10 checkpoint ends with the
    same weights and evaluation count as an uninterrupted run (ideal board)."""
    options = SPSAOptions(steps=20, seed=1, mode=mode)
    run = _stop_and_resume("iris", options, tmp_path / "checkpoint.json", stop_at=13, every=5)
    assert run.saved["optimizer"]["k"] == 10
    np.testing.assert_array_equal(*run.weights())
    assert run.resumed.loss_evaluations == run.whole.loss_evaluations == 40
    assert run.resumed.losses == run.whole.losses


def test_a_run_asked_to_stop_ends_at_its_step_with_a_checkpoint_and_resumes_to_the_end(
    tmp_path: Path,
) -> None:
    """``stop`` set during step 13 (what Ctrl-C does in ``sidra train spsa``): the run ends
    at that step's boundary, evaluated and counted, saved to its checkpoint although none
    was due; resumed, it ends as the uninterrupted run does (ideal board)."""
    data = load_dataset("iris")
    options = SPSAOptions(steps=20, seed=1)
    path = tmp_path / "checkpoint.json"
    stop = threading.Event()

    def ask_to_stop(step: SPSAStep) -> None:
        if step.step == 13:
            stop.set()

    with open_board("emu://?preset=ideal&seed=0") as board:
        whole = train_softmax_spsa(board, data, options)
    with open_board("emu://?preset=ideal&seed=0") as board:
        stopped = train_softmax_spsa(
            board, data, options, on_step=ask_to_stop, checkpoint=path, stop=stop
        )
    assert stopped.steps == stopped.settings["stopped_at_step"] == 13
    assert stopped.summary()["stopped_at_step"] == 13  # what --json prints and a job keeps
    assert stopped.loss_evaluations == 26 and len(stopped.losses) == 13
    assert 0.0 <= stopped.test_accuracy <= 1.0  # evaluated as a finished run is
    assert json.loads(path.read_text())["optimizer"]["k"] == 13
    with open_board("emu://?preset=ideal&seed=0") as board:
        resumed = train_softmax_spsa(board, data, options, checkpoint=path, resume=True)
    assert "stopped_at_step" not in resumed.settings
    assert resumed.losses == whole.losses and resumed.loss_evaluations == 40
    # Asked during the last step, the run ends there anyway: not a stopped run.
    late = threading.Event()

    def ask_at_the_end(step: SPSAStep) -> None:
        if step.step == 20:
            late.set()

    with open_board("emu://?preset=ideal&seed=0") as board:
        last = train_softmax_spsa(board, data, options, on_step=ask_at_the_end, stop=late)
    assert last.steps == 20 and "stopped_at_step" not in last.settings
    assert "stopped_at_step" not in last.summary()
    assert resumed.weights is not None and whole.weights is not None
    np.testing.assert_allclose(resumed.weights, whole.weights, atol=1e-6)


def test_host_mode_resumes_mid_way_between_programs_on_the_same_minibatches(
    tmp_path: Path,
) -> None:
    """Saved at step 3, seven of the ten minibatches host mode drew ahead unused: the
    checkpoint keeps the stream where step 4's starts, so the resumed run meets the
    same minibatches. It programs its weights at once (the saving run's board held
    step 0's), so the ideal board's sums round differently: close, not equal."""
    options = SPSAOptions(steps=8, seed=4, mode="host")
    run = _stop_and_resume("digits", options, tmp_path / "checkpoint.json", stop_at=4, every=3)
    assert run.saved["version"] == 4 and run.saved["optimizer"]["k"] == 3
    np.testing.assert_allclose(run.resumed.losses, run.whole.losses, rtol=1e-4)
    np.testing.assert_allclose(*run.weights(), atol=1e-4)


def test_resume_refuses_a_checkpoint_of_other_options(tmp_path: Path) -> None:
    data = load_dataset("iris")
    path = tmp_path / "checkpoint.json"
    with open_board("emu://?preset=ideal&seed=0") as board:
        train_softmax_spsa(
            board, data, SPSAOptions(steps=4, seed=1), checkpoint=path, checkpoint_every=2
        )
    with (
        open_board("emu://?preset=ideal&seed=0") as board,
        pytest.raises(ValueError, match="steps"),
    ):
        train_softmax_spsa(board, data, SPSAOptions(steps=8, seed=1), checkpoint=path, resume=True)


def test_a_version_1_checkpoint_still_resumes(tmp_path: Path) -> None:
    """Checkpoints written before the counts became JobCounts (version 1: counts
    mvm_calls, device_writes, time_ns, energy_nj) resume to the same run. Saved at
    step 10, where host mode programs anyway, so the resumed run programs alike."""

    def as_version_1(saved: dict[str, Any]) -> dict[str, Any]:
        counts = saved["counts"]
        saved["version"] = 1
        state = saved["optimizer"]  # arrays as lists of numbers, as before version 4
        state["x"] = array_from_json(state["x"]).tolist()
        state["history"] = [array_from_json(h).tolist() for h in state["history"]]
        del saved["programs"]
        saved["calibration_evals"] = 0  # the gains were given
        saved["counts"] = {
            "mvm_calls": counts["mvm_calls"],
            "device_writes": counts["device_writes"],
            "time_ns": counts["modeled_time_ns"],
            "energy_nj": counts["modeled_energy_nj"],
        }
        return saved

    options = SPSAOptions(steps=12, seed=2, mode="host")
    run = _stop_and_resume(
        "iris", options, tmp_path / "checkpoint.json", stop_at=11, every=10, edit=as_version_1
    )
    np.testing.assert_array_equal(*run.weights())
    assert run.resumed.loss_evaluations == run.whole.loss_evaluations == 24


def test_options_refuse_bad_values_unknown_names_and_changes() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"steps\n.*greater than or equal to 1"):
        SPSAOptions(steps=0)
    with pytest.raises(ValidationError, match="stepz"):
        SPSAOptions(stepz=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="'board' or 'host'"):
        SPSAOptions(mode="both")  # type: ignore[arg-type]
    options = SPSAOptions()
    with pytest.raises(ValidationError, match="frozen"):
        options.steps = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="weight_limit"):
        options.replace(weight_limit=0.0)


def _float_options() -> list[tuple[type[JobOptions], str]]:
    """(options class, name) of every number option of every job that may be a float."""
    classes = {SPSAOptions, LastLayerOptions, MLPOptions, PATOptions, PATJobOptions, FFOptions,
               CompareOptions, RecoveryOptions, EqPropOptions}  # fmt: skip
    return [
        (cls, name)
        for cls in sorted(classes, key=lambda c: c.__name__)
        for name, field in cls.model_fields.items()
        if "float" in str(field.annotation)
    ]


def test_every_jobs_number_options_are_found() -> None:
    """The test below is as wide as this list: a change to how options are annotated
    must not empty it."""
    assert {"a", "c", "weight_limit", "learning_rate"} <= {n for _, n in _float_options()}
    assert len(_float_options()) >= 30


@pytest.mark.parametrize(("options", "name"), _float_options())
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_options_refuse_numbers_that_are_not_finite(
    options: type[JobOptions], name: str, value: float
) -> None:
    """A learning-rate gain or a weight limit of inf ran a job of NaN weights: refused,
    naming the option, like any other value outside its range."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=rf"{name}\n.*finite number"):
        options(**{name: value})


def test_the_spsa_options_example_of_jobs_proto_is_taken() -> None:
    """The contract's example is what a stranger copies: it must be options SPSA takes
    (it named a "tile" option no job has)."""
    proto = Path(__file__).parents[1] / "proto" / "sidra" / "hil" / "v1" / "jobs.proto"
    lines = proto.read_text(encoding="utf-8").splitlines()
    comments = " ".join(line.strip()[2:].strip() for line in lines if line.strip()[:2] == "//")
    example = re.search(r"Example for spsa: (\{.*?\})", comments)
    assert example is not None
    options = SPSAOptions.model_validate(json.loads(example.group(1)))
    assert options.steps == 200


def _stop_at(k: int) -> Callable[[SPSAStep], None]:
    def stop(step: SPSAStep) -> None:
        if step.step == k:
            raise KeyboardInterrupt

    return stop


class _PerturbAndMVM(AnalogLinear):
    """The layer as it was before PerturbedMVM: each point a Perturb call and an MVM call."""

    @property
    def fused_perturbation(self) -> bool:
        return False


def test_fused_evaluation_gives_the_losses_of_perturb_and_mvm_calls(
    ideal_driver: BoardDriver,
) -> None:
    """On the ideal board the one-call evaluation of a step's points gives the losses of a
    Perturb and an MVM per point (a float32 rounding apart: the fused call drives the
    region's rows, the older calls the padded tile, and float32 sums of the two differ
    in their last bits), and leaves the weights programmed."""
    data = load_dataset("digits")
    w = np.random.default_rng(3).uniform(-0.5, 0.5, (data.features + 1, data.classes))
    points = [((11, 0.1),), ((11, -0.1),), ((12, 0.05),)]
    x = data.x_test[:16]
    expected = np.hstack([np.clip(x, -4, 4), np.ones((16, 1))]) @ w
    losses = []
    for layer_type in (AnalogLinear, _PerturbAndMVM):
        layer = layer_type(ideal_driver, 0, data.features, data.classes)
        evaluator = OnBoardEvaluator(
            layer, data.x_train, data.y_train, 64, np.random.default_rng(4)
        )
        losses.append(evaluator(w.astype(np.float32), points))
        if layer_type is AnalogLinear:  # restored: the board holds W itself again
            np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_on_board_spsa_over_grpc_takes_one_call_per_step(
    served: tuple[BoardDriver, int], remote: RemoteBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training over connect(...) uses the fused path by itself: each step of on-board SPSA
    is one RPC, a RunSequence that programs the step's weights and evaluates both points
    in one PerturbedMVM; no Perturb APPLY reaches the board."""
    from collections import Counter

    from sidra.drivers.requests import PerturbMode, PerturbRequest

    board, _ = served
    on_board: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    handle, send = board._handle, remote.run

    def counting(request):  # type: ignore[no-untyped-def]  # the transport's one seam
        applies = isinstance(request, PerturbRequest) and request.mode is PerturbMode.APPLY
        on_board["Perturb APPLY" if applies else type(request).__name__] += 1
        return handle(request)

    def sending(request):  # type: ignore[no-untyped-def]
        sent[type(request).__name__] += 1
        return send(request)

    monkeypatch.setattr(board, "_handle", counting)
    monkeypatch.setattr(remote, "run", sending)
    data = load_dataset("digits")
    options = SPSAOptions(steps=6, a=0.5, c=0.1, eval_every=1000, mode="board", batch_size=32)
    record = train_softmax_spsa(remote, data, options)
    assert record.steps == 6
    assert sent["SequenceRequest"] == 6  # one per step
    assert sent["PerturbRequest"] <= 2 and sent["ProgramRequest"] <= 1  # final evaluation
    assert on_board["PerturbedMVMRequest"] == 6
    assert on_board["Perturb APPLY"] == 0


def test_host_held_spsa_over_grpc_takes_one_call_per_program(
    remote: RemoteBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host mode over connect(...): the weights programmed every 10 steps and the 10
    steps' minibatches passed in the same RunSequence, one round trip per 10 steps;
    alone, MVM and Program calls only measure accuracy at the end."""
    from collections import Counter

    sent: Counter[str] = Counter()
    send = remote.run

    def sending(request):  # type: ignore[no-untyped-def]
        sent[type(request).__name__] += 1
        return send(request)

    monkeypatch.setattr(remote, "run", sending)
    data = load_dataset("digits")
    options = SPSAOptions(steps=20, a=0.5, c=0.1, eval_every=1000, mode="host", batch_size=32)
    record = train_softmax_spsa(remote, data, options)
    assert record.steps == 20 and record.loss_evaluations == 40
    assert sent["SequenceRequest"] == 2  # steps 1 and 11: Program, MVM of 10 minibatches
    # The final evaluation: the final weights programmed, test (540 rows) and train
    # (1,257) sets at 8 passes per input in calls of 128 inputs.
    assert sent["ProgramRequest"] == 1 and sent["MVMRequest"] == 5 + 10


def test_a_layer_on_several_tiles_takes_one_call_per_pass_over_grpc(
    served: tuple[BoardDriver, int], remote: RemoteBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 300-input layer spans two tiles by rows: its Program, forward (MVM) and backward
    (TransposeMVM) each reach the server as one RunSequence of its two blocks, and give
    what the blocks' calls one by one give (ideal board)."""
    from collections import Counter

    sent: Counter[str] = Counter()
    send = remote.run

    def sending(request):  # type: ignore[no-untyped-def]
        sent[type(request).__name__] += 1
        return send(request)

    board, _ = served
    rng = np.random.default_rng(5)
    w = rng.uniform(-0.5, 0.5, (301, 12)).astype(np.float32)
    x = rng.normal(0.0, 1.0, (8, 300)).astype(np.float32)
    delta = rng.normal(0.0, 1.0, (8, 12)).astype(np.float32)
    local = AnalogLinear(board, (2, 3), 300, 12)
    local.program(w)
    expected = local.forward(x), local.backward(delta)
    monkeypatch.setattr(remote, "run", sending)
    layer = AnalogLinear(remote, (2, 3), 300, 12)
    assert len(layer.blocks) == 2
    layer.program(w)
    got = layer.forward(x), layer.backward(delta)
    assert sent["SequenceRequest"] == 3
    assert not sent.keys() & {"MVMRequest", "TransposeMVMRequest", "ProgramRequest"}
    assert layer.mvm_calls == 4  # two blocks, forward and backward
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_accuracy_is_measured_on_the_mean_of_read_passes() -> None:
    """predict(read_repeats=4) is exactly the mean of 4 passes of each input, sent as one
    batch: the same as a second board of the same seed reading [x; x; x; x] in one call."""
    data = load_dataset("digits")
    x = data.x_test[:100]
    weights = np.random.default_rng(0).normal(0.0, 0.3, (65, 10)).astype(np.float32)
    with (
        open_board("emu://?preset=sidra-y1&seed=3") as first,
        open_board("emu://?preset=sidra-y1&seed=3") as second,
    ):
        layer = AnalogLinear(first, 0, data.features, data.classes)
        evaluator = OnBoardEvaluator(
            layer, data.x_train, data.y_train, 64, np.random.default_rng(0)
        )
        averaged = evaluator.predict(weights, x, read_repeats=4)
        assert layer.mvm_calls == 1
        reference = AnalogLinear(second, 0, data.features, data.classes)
        reference.program(weights)
        reference.restore()
        passes = reference.forward(np.tile(x, (4, 1))).reshape(4, len(x), data.classes)
    np.testing.assert_allclose(averaged, passes.mean(axis=0), rtol=0, atol=1e-5)
    # Read noise differs between the passes, so one pass is not the mean.
    assert np.abs(passes[0] - passes.mean(axis=0)).max() > 0.05


@pytest.mark.parametrize("mode", ["board", "host"])
def test_accuracy_measurements_use_eval_read_repeats_passes(mode: str) -> None:
    """With 4 passes per input an accuracy measurement sends at most 1,024 passes per
    call (256 inputs): the test set (540 rows) in 3 calls, the train set (1,257) in 5;
    training evaluations are unchanged (one per point on board; on host the 10 steps'
    minibatches go through the board in one call, drawn ahead of the steps)."""
    data = load_dataset("digits")
    options = SPSAOptions(steps=10, seed=0, mode=mode, eval_every=5, eval_read_repeats=4)
    with open_board("emu://?preset=sidra-y1&seed=0") as board:
        record = train_softmax_spsa(board, data, options)
    training = 20 if mode == "board" else 1
    assert record.loss_evaluations == 20
    assert record.mvm_calls == training + 2 * 3 + 3 + 5
    assert [c.step for c in record.checkpoints] == [5, 10]


def test_a_resumed_run_may_measure_accuracy_with_other_read_repeats(tmp_path: Path) -> None:
    """eval_read_repeats changes how accuracy is measured, not the optimizer's path: a
    checkpoint resumes under another value and ends with the same weights."""
    options = SPSAOptions(steps=12, seed=2, mode="host")
    run = _stop_and_resume(
        "iris", options, tmp_path / "checkpoint.json", stop_at=11, every=10,
        resume_options=options.replace(eval_read_repeats=2),
    )  # fmt: skip
    np.testing.assert_array_equal(*run.weights())


def _epoch_trainers() -> dict[str, Callable[..., TrainingRecord]]:
    from sidra.training import EqPropOptions, FFOptions, LastLayerOptions, MLPOptions
    from sidra.training.eqprop import train_eqprop
    from sidra.training.forward_forward import train_forward_forward
    from sidra.training.hybrid import train_last_layer
    from sidra.training.mlp import train_mlp

    def run(train: Callable[..., TrainingRecord], options: Any) -> Callable[..., TrainingRecord]:
        return lambda board, data, **kw: train(board, data, options, **kw)

    return {
        "last-layer": run(train_last_layer, LastLayerOptions(hidden=16, epochs=3)),
        "mlp": run(train_mlp, MLPOptions(hidden=(16,), epochs=3)),
        "ff": run(train_forward_forward, FFOptions(hidden=(16,), epochs=3, eval_every=3)),
        "eqprop": run(train_eqprop, EqPropOptions(hidden=(16,), epochs=3)),
    }


@pytest.mark.parametrize("job", list(_epoch_trainers()))
def test_an_epoch_job_asked_to_stop_ends_after_that_epoch_evaluated(job: str) -> None:
    """``stop`` set during epoch 1 of 3 (Ctrl-C in ``sidra train``): one epoch run, its
    test checkpoint taken (forward-forward's too, though its next was due at epoch 3)."""
    stop = threading.Event()
    epochs: list[int] = []

    def on_epoch(epoch: int, test: float | None) -> None:
        epochs.append(epoch)
        stop.set()

    with open_board("emu://?preset=ideal&seed=0") as board:
        record = _epoch_trainers()[job](board, load_dataset("iris"), on_epoch=on_epoch, stop=stop)
    assert epochs == [1] and record.settings["stopped_at_epoch"] == 1
    assert len(record.checkpoints) == 1
    assert record.test_accuracy == record.checkpoints[-1].test_accuracy
    assert record.steps == len(record.losses) > 0
