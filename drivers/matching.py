"""How closely cells read hold the conductances they were programmed to: the figures a
client's held-model check (sidra.training.deployment) and a server's deployment check
(deployments.proto "Checked") both report, computed one way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ConductanceMatch", "match_conductances"]


@dataclass(frozen=True, slots=True)
class ConductanceMatch:
    """Conductances read against their targets, cell by cell."""

    correlation: float
    """Pearson correlation (0 when either side is constant: no order to keep)."""
    rms_deviation_us: float
    """Root mean square of read minus target, µS (drift, noise, what the write left)."""
    mean_deviation_us: float
    """Mean of read minus target, µS (a common shift: drift's decay)."""


def match_conductances(read_us: npt.ArrayLike, targets_us: npt.ArrayLike) -> ConductanceMatch:
    """The match of ``read_us`` with ``targets_us`` (same number of cells, any shape)."""
    g = np.asarray(read_us, np.float64).ravel()
    t = np.asarray(targets_us, np.float64).ravel()
    if g.size != t.size or g.size == 0:
        raise ValueError(f"got {g.size} conductances read for {t.size} targets")
    # Constant read or target values have no correlation: 0, as for an unrelated tile.
    correlation = float(np.corrcoef(g, t)[0, 1]) if g.std() and t.std() else 0.0
    return ConductanceMatch(
        correlation=correlation,
        rms_deviation_us=float(np.sqrt(np.mean((g - t) ** 2))),
        mean_deviation_us=float(np.mean(g - t)),
    )
