"""``sidra model``: its commands, each loaded when a command line names it.

Evaluating, deploying, importing and running a model need the training code and the
emulator (sidra.cli.model); listing a server's deployments, checking, pulling and
forgetting one only ask the server (sidra.cli.model_served, sidra.cli.model_checks) and
start in about two thirds of the time without them; showing a model reads its file
alone (sidra.cli.model_show: 0.40-0.51 s against 0.81-1.10 s with sidra.cli.model).
"""

from __future__ import annotations

from sidra.cli.commands import LAZY_COMMANDS, Loader, command_loader, lazy_app

__all__ = ["MODEL_COMMANDS", "model_app"]

MODEL_COMMANDS: dict[str, Loader] = {
    "show": command_loader(
        "sidra.cli.model_show", "show",
        "A model's layers, inputs, labels and where it was trained."),
    "eval": command_loader(
        "sidra.cli.model", "evaluate",
        "Program a model onto a board and measure it: accuracy, recall, cost per sample."),
    "deploy": command_loader(
        "sidra.cli.model", "deploy",
        "Program a model onto a board and leave it there, to run later with --held."),
    "list": command_loader(
        "sidra.cli.model_served", "list_deployments",
        "Models deployed on a server's board by name: where, by whom, whether intact."),
    "check": command_loader(
        "sidra.cli.model_checks", "check_deployment",
        "Have the server read a deployment's cells now and compare them with its targets."),
    "checks": command_loader(
        "sidra.cli.model_checks", "check_history",
        "The checks the server kept of a deployment, oldest first: how its cells aged."),
    "pull": command_loader(
        "sidra.cli.model_served", "pull",
        "Fetch a deployment's model file from a server (to run elsewhere or keep)."),
    "undeploy": command_loader(
        "sidra.cli.model_served", "undeploy",
        "Forget a deployment (yours, or as an admin anyone's); its tiles keep what they hold."),
    "import": command_loader(
        "sidra.cli.model", "import_weights",
        "Make a model of a network trained in software, to deploy with sidra model."),
    "predict": command_loader(
        "sidra.cli.model", "predict",
        "Program a model onto a board and classify new samples there."),
    "tune": command_loader(
        "sidra.cli.model_tune", "tune",
        "Train a model's last layers again on the board it runs on, and write it out."),
}  # fmt: skip
"""The commands of ``sidra model``, in the order help lists them."""


model_app = lazy_app(
    MODEL_COMMANDS,
    LAZY_COMMANDS["model"].summary,  # what `sidra --help` says of the group, once
)
