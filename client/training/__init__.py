"""Training with the board in the loop: SPSA today; last-layer and hybrid training grow here."""

from sidra.client.training.analog_layer import AnalogLinear
from sidra.client.training.board_spsa import (
    BoardSoftmaxObjective,
    SPSATrainingResult,
    evaluate_accuracy,
    train_softmax_spsa,
)
from sidra.client.training.datasets import BUNDLED, Dataset, load_dataset
from sidra.client.training.schedules import constant, powerseries, spall_gains
from sidra.client.training.softmax import accuracy, cross_entropy
from sidra.client.training.spsa import PairEvaluator, SPSAResult, SPSAStep, minimize_spsa

__all__ = [
    "BUNDLED",
    "AnalogLinear",
    "BoardSoftmaxObjective",
    "Dataset",
    "PairEvaluator",
    "SPSAResult",
    "SPSAStep",
    "SPSATrainingResult",
    "accuracy",
    "constant",
    "cross_entropy",
    "evaluate_accuracy",
    "load_dataset",
    "minimize_spsa",
    "powerseries",
    "spall_gains",
    "train_softmax_spsa",
]
