"""Board characterization: measure a board through its operations, write an emulator profile.

``characterize(board)`` runs one small measurement per physical quantity
(converters, read noise, write-verify programming, perturbation writes,
variation and stuck cells, drift), each a function ``board -> estimates with
uncertainty + spent budget``, and builds the :class:`~sidra.emulator.config.BoardProfile`
a twin of the board runs on (``emu://?profile=FILE``). It uses only the board
operation set of :mod:`sidra.drivers` (never the profile an emulated board
reports: a physical board has none), so it runs unchanged on a local driver, a
serial or PCIe board, or a service's board.
"""

from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate
from sidra.characterize.run import Characterization, characterize

__all__ = ["Budget", "Characterization", "Estimate", "MeteredBoard", "characterize"]
