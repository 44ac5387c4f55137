"""``sidra train``: training jobs on a board, with records, plots and --json.

One module a command, or a family of commands that run alike: ``spsa``, ``epochs``
(last-layer, mlp, ff, eqprop), ``pat``, ``compare``, ``drift_recovery``. What they share
is in ``params`` (the options every command takes) and ``running`` (a run's board,
progress, Ctrl-C, record and summary, or a job inside a server).

Each option of a job is a parameter named like the field of its option model and
declared with ``field_option`` (help = the field's docstring); the defaults are the
model's. tests/test_cli.py checks that every field has a flag and every other parameter
is one the command keeps for itself.
"""

from __future__ import annotations

import typer

from sidra.cli.train.compare import compare
from sidra.cli.train.drift_recovery import drift_recovery_command
from sidra.cli.train.epochs import eqprop, forward_forward, last_layer, mlp
from sidra.cli.train.pat import pat
from sidra.cli.train.spsa import spsa

__all__ = ["train_app"]

train_app = typer.Typer(no_args_is_help=True, help="Train with the board in the loop.")
# In the roadmap's order, as `sidra train --help` lists them.
for _name, _command in (
    ("spsa", spsa),
    ("last-layer", last_layer),
    ("mlp", mlp),
    ("pat", pat),
    ("ff", forward_forward),
    ("eqprop", eqprop),
    ("compare", compare),
    ("drift-recovery", drift_recovery_command),
):
    train_app.command(_name)(_command)
