"""``sidra model``: its commands, each loaded when a command line names it.

Showing, evaluating, deploying, importing and running a model need the training code
and the emulator (sidra.cli.model); listing a server's deployments, checking, pulling
and forgetting one only ask the server (sidra.cli.model_served, sidra.cli.model_checks)
and start in about two thirds of the time without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidra.cli.commands import command_loader, lazy_app

__all__ = ["MODEL_COMMANDS", "model_app"]

MODEL_COMMANDS: dict[str, Callable[[], Any]] = {
    "show": command_loader("sidra.cli.model", "show"),
    "eval": command_loader("sidra.cli.model", "evaluate"),
    "deploy": command_loader("sidra.cli.model", "deploy"),
    "list": command_loader("sidra.cli.model_served", "list_deployments"),
    "check": command_loader("sidra.cli.model_checks", "check_deployment"),
    "checks": command_loader("sidra.cli.model_checks", "check_history"),
    "pull": command_loader("sidra.cli.model_served", "pull"),
    "undeploy": command_loader("sidra.cli.model_served", "undeploy"),
    "import": command_loader("sidra.cli.model", "import_weights"),
    "predict": command_loader("sidra.cli.model", "predict"),
}
"""The commands of ``sidra model``, in the order help lists them."""


model_app = lazy_app(
    MODEL_COMMANDS,
    "Trained networks (model.npz in a run's record): show one, evaluate it on a board, "
    "classify new samples there, keep it deployed on a served board by name.",
)
