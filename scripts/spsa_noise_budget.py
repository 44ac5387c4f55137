"""Where on-board SPSA's noise comes from, on the ``sidra-y1`` preset (digits, 64→10).

Trains host-held SPSA for ``--steps`` steps (seed 0, a = 0.5, c = 0.2) to reach weights
W as a run has them, then, on fresh boards of one seed holding W:

1. Noise of one SPSA loss difference d = L(W + cΔ) − L(W − cΔ) (nats) at a fixed
   minibatch and Δ, repeated ``--repeats`` times: the std of d about its mean, for the
   two ways a board evaluates the pair, on ``sidra-y1`` and with one of its noise
   sources switched off:
   - on-board: one PerturbedMVM (Perturb +cΔ, pass, Perturb −cΔ, pass, restore), as
     ``--mode board`` trains;
   - host-held: one pass of W, ±cΔ added digitally to both, as ``--mode host`` trains.
   Beside it the signal: the std over Δ of the noiseless d (what SPSA measures).
   Read noise, perturbation write noise and the Program's write-verify tolerance
   (with its pulse noise) are each removed in turn (the ``off`` rows).
2. The test accuracy of W measured on the board with 1 and 8 read passes averaged per
   input, ``--measurements`` times each (mean, std, range), beside W's noiseless
   accuracy on the host.

    .venv/bin/python scripts/spsa_noise_budget.py
    .venv/bin/python scripts/spsa_noise_budget.py --steps 10000 --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from sidra.drivers import Board
from sidra.emulator import preset
from sidra.emulator.config import BoardProfile
from sidra.emulator.driver import EmulatorDriver
from sidra.training import (
    AnalogLinear,
    Dataset,
    SPSAOptions,
    accuracy,
    cross_entropy,
    load_dataset,
    train_softmax_spsa,
)
from sidra.training.spsa import perturbation_matrix

Array = np.ndarray[Any, np.dtype[np.float32]]


def profiles() -> dict[str, BoardProfile]:
    """sidra-y1 and sidra-y1 with one noise source off, by the source's name."""
    base = preset("sidra-y1")
    quiet_reads = base.read_noise.model_copy(update={"output_noise_ua": 0.0, "sigma_g_fraction": 0})
    exact_program = base.programming.model_copy(
        update={
            "tolerance_us": 0.0,
            "pulse_gain": 1.0,
            "pulse_gain_spread": 0.0,
            "pulse_noise_us": 0,
        }
    )
    quiet_perturb = base.perturbation.model_copy(update={"write_noise_us": 0.0})
    return {
        "nothing (sidra-y1 as is)": base,
        "read noise": base.model_copy(update={"read_noise": quiet_reads}),
        "perturbation write noise": base.model_copy(update={"perturbation": quiet_perturb}),
        "Program tolerance and pulse noise": base.model_copy(update={"programming": exact_program}),
    }


def with_bias(x: Array) -> Array:
    return np.hstack([np.clip(x, -4.0, 4.0), np.ones((len(x), 1), np.float32)])


def difference_noise(
    board: Board, weights: Array, xb: Array, yb: Any, seeds: list[int], c: float, repeats: int
) -> tuple[float, float]:
    """Mean std of d over ``repeats`` (on-board, host-held), averaged over ``seeds``."""
    layer = AnalogLinear(board, 0, xb.shape[1], weights.shape[1])
    layer.program(weights)
    inputs = with_bias(xb)
    on_board, host_held = [], []
    for seed in seeds:
        fused = []
        for _ in range(repeats):
            plus, minus = layer.perturbed_forward(xb, [(seed, c, 1), (seed, c, -1)])
            fused.append(cross_entropy(plus, yb) - cross_entropy(minus, yb))
        shift = inputs @ perturbation_matrix(((seed, c),), weights.shape)
        shared = []
        for _ in range(repeats):
            analog = layer.forward(xb)
            shared.append(cross_entropy(analog + shift, yb) - cross_entropy(analog - shift, yb))
        on_board.append(float(np.std(fused)))
        host_held.append(float(np.std(shared)))
    return float(np.mean(on_board)), float(np.mean(host_held))


def measured_accuracy(
    board: Board, weights: Array, data: Dataset, passes: int, times: int
) -> list[float]:
    layer = AnalogLinear(board, 0, data.features, data.classes, read_repeats=passes)
    layer.program(weights)
    return [accuracy(layer.forward(data.x_test), data.y_test) for _ in range(times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="host-held SPSA steps to W")
    parser.add_argument("--repeats", type=int, default=100, help="evaluations of each pair")
    parser.add_argument("--directions", type=int, default=5, help="Δ per noise figure")
    parser.add_argument("--measurements", type=int, default=20, help="accuracy measurements")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    data = load_dataset("digits")
    options = SPSAOptions(steps=args.steps, seed=0, mode="host", eval_every=args.steps)
    weights = train_softmax_spsa(EmulatorDriver(preset("sidra-y1")), data, options).weights
    assert weights is not None
    rng = np.random.default_rng(1)
    batch = rng.choice(len(data.x_train), 64, replace=False)
    xb, yb = data.x_train[batch], data.y_train[batch]
    inputs = with_bias(xb)
    seeds = [int(s) for s in rng.integers(0, 2**63, 200)]
    # c at the first step and at step 10,000 of c_k = 0.2 / k^0.101.
    report: dict[str, Any] = {"steps": args.steps, "difference_noise": {}}
    for c in (0.2, round(0.2 / 10_000**0.101, 3)):
        signal = []
        for seed in seeds:
            shift = perturbation_matrix(((seed, c),), weights.shape)
            signal.append(
                cross_entropy(inputs @ (weights + shift), yb)
                - cross_entropy(inputs @ (weights - shift), yb)
            )
        rows: dict[str, Any] = {"signal_std": float(np.std(signal))}
        for name, profile in profiles().items():
            board = EmulatorDriver(profile, seed=0)
            on_board, host_held = difference_noise(
                board, weights, xb, yb, seeds[: args.directions], c, args.repeats
            )
            rows[name] = {"on_board": on_board, "host_held": host_held}
        report["difference_noise"][str(c)] = rows
    noiseless = accuracy(with_bias(data.x_test) @ weights, data.y_test)
    report["accuracy"] = {"noiseless": noiseless}
    for passes in (1, 8):
        board = EmulatorDriver(preset("sidra-y1"), seed=0)
        found = measured_accuracy(board, weights, data, passes, args.measurements)
        report["accuracy"][f"{passes}_passes"] = {
            "mean": float(np.mean(found)),
            "std": float(np.std(found)),
            "min": min(found),
            "max": max(found),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"W: host-held SPSA, {args.steps} steps, seed 0")
    for c, rows in report["difference_noise"].items():
        print(f"c = {c}: std of d over Δ (signal) {rows['signal_std']:.4f} nats")
        for name, row in rows.items():
            if name != "signal_std":
                print(
                    f"  off: {name:34s} std of d: on-board {row['on_board']:.4f}, "
                    f"host-held {row['host_held']:.4f}"
                )
    acc = report["accuracy"]
    print(f"test accuracy of W: noiseless {acc['noiseless']:.2%}")
    for passes in (1, 8):
        m = acc[f"{passes}_passes"]
        print(
            f"  measured, {passes} pass(es) per input: mean {m['mean']:.2%} std {m['std']:.2%} "
            f"range {m['min']:.2%} - {m['max']:.2%}"
        )


if __name__ == "__main__":
    main()
