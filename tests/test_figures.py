"""Records draw their figures without pyplot: a caller's matplotlib is left as it was, and
a server drawing a job's record on the job's thread shares no state with another."""

from __future__ import annotations

import subprocess
import sys

_DRAW = """
import sys
import matplotlib
matplotlib.use("svg")  # a caller's own choice, as a notebook's would be
from sidra.training import Checkpoint, Comparison, MethodResult, TrainingRecord
record = TrainingRecord({"job": "spsa", "dataset": "digits"}, losses=[2.3, 2.1, 1.9],
                        checkpoints=[Checkpoint(3, 0.31, 1000)], test_accuracy=0.31)
run = MethodResult(name="spsa", seed=0, test_accuracy=0.31, steps=3, loss_evaluations=6,
                   mvm_calls=4, device_writes=1000, modeled_time_ns=1.0, modeled_energy_nj=1.0)
drawn = [record.files(plot=True)["plot.png"],
         Comparison({"dataset": "digits", "budget": 6}, [run]).files(plot=True)["plot.png"]]
assert all(png[:8] == b"\\x89PNG\\r\\n\\x1a\\n" for png in drawn)
assert "plot.png" not in record.files()  # drawn only when asked for
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_a_record_s_plot_leaves_the_caller_s_matplotlib_as_it_was() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _DRAW], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["svg", "False"]  # backend kept, pyplot never imported


def test_the_run_plot_names_every_line_once_outside_the_curves() -> None:
    """The legend sat on the accuracy curve and left it out; a one-step mean was drawn
    as a line of its own ("mean of 1"); device writes read in 1e6 offset notation."""
    from sidra.training import Checkpoint, TrainingRecord

    checkpoints = [Checkpoint(k, 0.1 * k, 250_000 * k) for k in (1, 2, 3)]
    few = TrainingRecord({"job": "last-layer", "dataset": "iris"}, losses=[1.2, 0.9, 0.7],
                         checkpoints=checkpoints, test_accuracy=0.3)  # fmt: skip
    left, right, _twin = few.figure().axes  # the twin axis is made after both
    labels = [text.get_text() for text in left.get_legend().get_texts()]
    assert labels == ["loss per step", "test accuracy"]  # no "mean of 1"
    assert left.get_legend().get_bbox_to_anchor().y0 > left.get_window_extent().y1 - 1
    many = TrainingRecord({"job": "spsa", "dataset": "digits"}, losses=[1.0] * 400,
                          checkpoints=checkpoints, test_accuracy=0.3)  # fmt: skip
    left, right, _twin = many.figure().axes
    labels = [text.get_text() for text in left.get_legend().get_texts()]
    assert labels == ["loss per step", "mean of 4 steps", "test accuracy"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(right.figure).draw()
    assert any("00,000" in tick.get_text() for tick in right.get_xticklabels())
    assert right.xaxis.get_offset_text().get_text() == ""


def test_device_writes_ticks_leave_room_for_their_labels() -> None:
    """Writes from 15,000 to 23,000 at matplotlib's default tick count printed as
    "15,00016,00017,000..." on the run plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sidra.training import Checkpoint, TrainingRecord

    checkpoints = [Checkpoint(k, 0.5, 15_000 + 1_000 * k) for k in range(9)]
    record = TrainingRecord({"job": "last-layer", "dataset": "wine"}, losses=[0.5] * 9,
                            checkpoints=checkpoints, test_accuracy=0.5)  # fmt: skip
    _left, right, _twin = record.figure().axes
    FigureCanvasAgg(right.figure).draw()
    shown = [t for t in right.get_xticklabels() if t.get_text()]
    assert 2 <= len(shown) <= 6, [t.get_text() for t in shown]
