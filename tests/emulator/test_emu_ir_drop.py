"""First-order IR drop against an exact nodal analysis of a small resistive crossbar.

Geometry (IRDrop in emulator/config.py): word line i runs along row i with its
periphery (driver in MVM, sense amplifier in TransposeMVM) at column 0; bit
line j runs along column j with its periphery at the last row. Segment
resistance r_wl between the word-line periphery and cell (i, 0) and between
adjacent cells of a row; r_bl between adjacent cells of a column and between
cell (R − 1, j) and the bit-line periphery. The far ends are open. Sensing
peripheries are virtual grounds.

The emulator's model is linear and exact to first order in r, so its error
against the exact solution must be O(r²): halving r divides it by 4, and it is
a small fraction of the IR-drop effect itself. A model with the word-line and
bit-line roles swapped for column input (the transpose) is wrong at first order,
and the checks below would flag it (``test_swapped_roles_would_be_caught``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from board_data import uniform_v
from emu_support import make_driver, make_profile

from sidra.drivers import Region
from sidra.emulator.config import Drift, DriftModel, Geometry, IRDrop, Variation
from sidra.emulator.ir_drop import effective_conductance

F64 = npt.NDArray[np.float64]
ROWS, COLS = 6, 5


def exact_crossbar(
    g_us: npt.ArrayLike, r_wl: float, r_bl: float, v: npt.ArrayLike, *, transpose: bool
) -> F64:
    """Exact periphery currents (µA) of the resistive crossbar, by nodal analysis.

    Unknowns: word-line node a[i, j] and bit-line node b[i, j] at every cell
    (2·R·C node voltages). MVM drives word-line peripheries with v[:, i] and senses
    the bit-line peripheries at 0 V; transpose drives the bit-line peripheries with
    v[:, j] and senses the word-line peripheries at 0 V. Conductances in S.
    """
    g = np.asarray(g_us, np.float64) * 1e-6
    v = np.asarray(v, np.float64)
    rows, cols = g.shape
    n = 2 * rows * cols

    def a(i: int, j: int) -> int:
        return int(i * cols + j)

    def b(i: int, j: int) -> int:
        return int(rows * cols + i * cols + j)

    y = np.zeros((n, n))

    def stamp(p: int, q: int, conductance: float) -> None:
        y[p, p] += conductance
        y[q, q] += conductance
        y[p, q] -= conductance
        y[q, p] -= conductance

    y_wl, y_bl = 1.0 / r_wl, 1.0 / r_bl
    for i in range(rows):
        for j in range(cols):
            stamp(a(i, j), b(i, j), g[i, j])  # the cell
            if j + 1 < cols:
                stamp(a(i, j), a(i, j + 1), y_wl)  # word-line segment
            if i + 1 < rows:
                stamp(b(i, j), b(i + 1, j), y_bl)  # bit-line segment
    # Periphery segments, to a node held at a fixed voltage (the source or 0 V).
    for i in range(rows):
        y[a(i, 0), a(i, 0)] += y_wl
    for j in range(cols):
        y[b(rows - 1, j), b(rows - 1, j)] += y_bl

    rhs = np.zeros((n, len(v)))
    if not transpose:
        for i in range(rows):
            rhs[a(i, 0)] = y_wl * v[:, i]
        x = np.linalg.solve(y, rhs)
        sensed = [x[b(rows - 1, j)] * y_bl for j in range(cols)]  # into the bit-line periphery
    else:
        for j in range(cols):
            rhs[b(rows - 1, j)] = y_bl * v[:, j]
        x = np.linalg.solve(y, rhs)
        sensed = [x[a(i, 0)] * y_wl for i in range(rows)]  # into the word-line periphery
    return np.stack(sensed, axis=1) * 1e6


def test_exact_solver_reduces_to_ohm_and_kirchhoff() -> None:
    """The reference itself: with tiny wires it gives V·G and V·Gᵀ, and it is reciprocal."""
    rng = np.random.default_rng(40)
    g = rng.uniform(1, 40, (ROWS, COLS))
    v = rng.uniform(-0.2, 0.2, (4, ROWS))
    vt = rng.uniform(-0.2, 0.2, (4, COLS))
    # 1 mΩ wires change currents by ~1e-6 relative; the solve itself is good to ~1e-9.
    for inputs, matrix, transpose in ((v, g, False), (vt, g.T, True)):
        expected = inputs @ matrix
        got = exact_crossbar(g, 1e-3, 1e-3, inputs, transpose=transpose)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # Reciprocity: the transfer matrices of the two directions are transposes.
    forward = exact_crossbar(g, 30.0, 7.0, np.eye(ROWS), transpose=False)  # [i, j]
    backward = exact_crossbar(g, 30.0, 7.0, np.eye(COLS), transpose=True)  # [j, i]
    np.testing.assert_allclose(forward, backward.T, rtol=1e-10)


def _relative(a: F64, b: F64) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _emulated(r_wl: float, r_bl: float, g: np.ndarray, v: np.ndarray, transpose: bool) -> F64:
    board = make_driver(
        make_profile(
            geometry=Geometry(tiles=1, rows=ROWS, cols=COLS),
            ir_drop=IRDrop(wordline_segment_ohm=r_wl, bitline_segment_ohm=r_bl),
        )
    )
    board.program(0, g)
    run = board.transpose_mvm if transpose else board.mvm
    return run(0, v).currents.astype(np.float64)


def _check_first_order(model: F64, exact: F64, ideal: F64) -> tuple[float, float]:
    """(error of the model vs exact, size of the IR-drop effect), both relative to exact."""
    return _relative(model, exact), _relative(ideal, exact)


# Segment resistances large enough for a ≈ 1 % effect on 6 × 5 cells of up to 40 µS
# (real boards: 0.01–0.1 Ω over 256 × 256), small enough for first order to dominate.
# Unequal, so that swapping word-line and bit-line roles changes the answer.
RESISTANCES = {"wordline-heavy": (25.0, 5.0), "bitline-heavy": (5.0, 25.0)}


@pytest.mark.parametrize("direction", ["mvm", "transpose"])
@pytest.mark.parametrize("resistances", RESISTANCES.values(), ids=RESISTANCES.keys())
def test_ir_drop_matches_exact_solution_to_first_order(
    direction: str, resistances: tuple[float, float]
) -> None:
    """Emulated MVM / TransposeMVM vs the exact solve at r and r/2: the error is < 5 % of
    the IR effect and shrinks by 4 ± 0.4 when r halves (O(r²) residual).

    float32 rounding (~1e-7 relative) is ≥ 50× below the second-order error at r/2.
    """
    transpose = direction == "transpose"
    rng = np.random.default_rng(41)
    g = (rng.integers(16, 641, (ROWS, COLS)) / 16).astype(np.float32)  # non-uniform, 1–40 µS
    v = np.concatenate(
        [
            uniform_v(rng, (16, COLS if transpose else ROWS)),
            np.full((1, COLS if transpose else ROWS), 0.2, np.float32),
        ]
    )
    ideal = v.astype(np.float64) @ (g.T if transpose else g).astype(np.float64)
    errors = []
    for scale in (1.0, 0.5):
        r_wl, r_bl = (r * scale for r in resistances)
        exact = exact_crossbar(g, r_wl, r_bl, v, transpose=transpose)
        error, effect = _check_first_order(_emulated(r_wl, r_bl, g, v, transpose), exact, ideal)
        assert effect > 1e-3  # the wires matter at this r
        assert error < 0.05 * effect, (scale, error, effect)
        errors.append(error)
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize("resistances", RESISTANCES.values(), ids=RESISTANCES.keys())
def test_swapped_roles_would_be_caught(resistances: tuple[float, float]) -> None:
    """The check above distinguishes the right geometry from plausible wrong ones.

    For column input, building G_eff from Gᵀ as if the driven bit lines were word lines
    (periphery at index 0) — with or without swapping r_wl and r_bl — or, for row input,
    swapping r_wl and r_bl, is wrong at first order: its error is a large fraction of
    the effect and far above the 5 % the emulator must meet.
    """
    r_wl, r_bl = resistances
    rng = np.random.default_rng(41)
    g = (rng.integers(16, 641, (ROWS, COLS)) / 16).astype(np.float32)
    v_cols = uniform_v(rng, (16, COLS)).astype(np.float64)
    v_rows = uniform_v(rng, (16, ROWS)).astype(np.float64)

    exact_t = exact_crossbar(g, r_wl, r_bl, v_cols, transpose=True)
    ideal_t = v_cols @ g.T.astype(np.float64)
    right_t = v_cols @ effective_conductance(g, r_wl, r_bl).T.astype(np.float64)
    for wrong in (
        v_cols @ effective_conductance(g.T.copy(), r_wl, r_bl).astype(np.float64),
        v_cols @ effective_conductance(g.T.copy(), r_bl, r_wl).astype(np.float64),
    ):
        error, effect = _check_first_order(wrong, exact_t, ideal_t)
        assert error > 0.2 * effect
    error, effect = _check_first_order(right_t, exact_t, ideal_t)
    assert error < 0.05 * effect

    exact = exact_crossbar(g, r_wl, r_bl, v_rows, transpose=False)
    ideal = v_rows @ g.astype(np.float64)
    swapped = v_rows @ effective_conductance(g, r_bl, r_wl).astype(np.float64)
    error, effect = _check_first_order(swapped, exact, ideal)
    assert error > 0.2 * effect


def test_incremental_kernel_matches_a_fresh_computation_after_partial_writes() -> None:
    """The emulator caches G_eff and refreshes only the rows and columns a write touches.
    After perturbing, restoring and reprogramming sub-regions (and advancing the clock
    under drift, with gain variation and stuck cells), MVM and TransposeMVM still equal
    V·G_eff(measured) computed from scratch from ReadConductance."""
    r_wl, r_bl = 2.0, 3.0
    board = make_driver(
        make_profile(
            geometry=Geometry(tiles=1, rows=64, cols=48),
            ir_drop=IRDrop(wordline_segment_ohm=r_wl, bitline_segment_ohm=r_bl),
            variation=Variation(
                gain_spread=0.05, stuck_at_min_fraction=0.01, stuck_at_max_fraction=0.01
            ),
            drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.05, nu_std=0.02),
        )
    )
    rng = np.random.default_rng(42)
    board.program(0, rng.uniform(1, 40, (64, 48)).astype(np.float32))
    v = uniform_v(rng, (8, 64))
    vt = uniform_v(rng, (8, 48))
    steps = [
        lambda: None,
        lambda: board.perturb(0, 5, 2.0, region=Region(10, 20, 5, 7)),
        lambda: board.advance_clock(100.0),
        lambda: board.program(0, np.full((3, 4), 30.0, np.float32), row_offset=61, col_offset=44),
        lambda: board.restore(0, Region(10, 20, 5, 7)),
        lambda: board.perturb(0, 6, 1.0, region=Region(0, 0, 2, 2)),
    ]
    for step in steps:
        step()
        g_eff = effective_conductance(board.read_conductance(0).conductances, r_wl, r_bl)
        g_eff64 = g_eff.astype(np.float64)
        scale = 0.2 * 64 * 40
        np.testing.assert_allclose(board.mvm(0, v).currents, v @ g_eff64, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(
            board.transpose_mvm(0, vt).currents, vt @ g_eff64.T, rtol=0, atol=1e-6 * scale
        )
