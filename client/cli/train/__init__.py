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

from sidra.cli.commands import LAZY_COMMANDS, Loader, command_loader, lazy_app

__all__ = ["TRAIN_COMMANDS", "train_app"]

TRAIN_COMMANDS: dict[str, Loader] = {
    "spsa": command_loader(
        "sidra.cli.train.spsa", "spsa",
        "SPSA training of a softmax layer (features → classes) on the board."),
    "last-layer": command_loader(
        "sidra.cli.train.epochs", "last_layer",
        "Fixed random feature layer on the board, head trained with exact gradients."),
    "mlp": command_loader(
        "sidra.cli.train.epochs", "mlp",
        "Every layer on the board: forward by MVM, backward by TransposeMVM."),
    "pat": command_loader(
        "sidra.cli.train.pat", "pat",
        "Physics-aware training: forward on the board, backward through its twin."),
    "ff": command_loader(
        "sidra.cli.train.epochs", "forward_forward",
        "Forward-forward: each layer trained on its own goodness, no backward pass."),
    "eqprop": command_loader(
        "sidra.cli.train.epochs", "eqprop",
        "Equilibrium propagation: free and nudged phases settle on the same tiles."),
    "compare": command_loader(
        "sidra.cli.train.compare", "compare",
        "Every estimator and training algorithm on one budget and one board, per seed."),
    "drift-recovery": command_loader(
        "sidra.cli.train.drift_recovery", "drift_recovery_command",
        "Deploy a digitally trained 64→H→10 net, age the board, calibrate, retrain the "
        "last layer."),
}  # fmt: skip
"""The commands of ``sidra train``, in the roadmap's order, as help lists them: each
loaded when a command line names it (``sidra train spsa`` imports neither PAT's twin
nor the comparison's estimators)."""

train_app = lazy_app(
    TRAIN_COMMANDS,
    LAZY_COMMANDS["train"].summary,  # what `sidra --help` says of the group, once
)
