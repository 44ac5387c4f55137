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
