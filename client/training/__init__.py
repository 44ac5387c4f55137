"""Training with the board in the loop: SPSA today; last-layer and hybrid training grow here."""

from sidra.client.training.analog_layer import AnalogLinear, Mapping
from sidra.client.training.board_spsa import SPSAOptions, train_softmax_spsa
from sidra.client.training.calibration import Calibration, calibrate, noise_level
from sidra.client.training.compare import EstimatorResult, compare_estimators, standard_estimators
from sidra.client.training.datasets import BUNDLED, Dataset, load_dataset
from sidra.client.training.estimators import (
    AntitheticES,
    AnyPoint,
    CentralDifferences,
    Coordinate,
    Direction,
    ForwardGradient,
    GradientEstimator,
    HostEvaluator,
    HostHeldAnyEvaluator,
    SPSAGradient,
    descend,
    displacement,
)
from sidra.client.training.evaluators import HostHeldEvaluator, OnBoardEvaluator
from sidra.client.training.feedback_alignment import FeedbackAlignmentNetwork, random_feedback
from sidra.client.training.hybrid import HybridNetwork, LastLayerOptions, train_last_layer
from sidra.client.training.records import Checkpoint, TrainingRecord
from sidra.client.training.recovery import RecoveryOptions, RecoveryReport, drift_recovery
from sidra.client.training.schedules import constant, powerseries, spall_gains
from sidra.client.training.softmax import accuracy, cross_entropy
from sidra.client.training.spsa import (
    SPSA,
    Ask,
    Evaluator,
    PairEvaluator,
    SPSAResult,
    SPSASettings,
    SPSAStep,
    minimize_spsa,
    run,
)

__all__ = [
    "BUNDLED",
    "SPSA",
    "Ask",
    "Calibration",
    "Evaluator",
    "SPSASettings",
    "calibrate",
    "noise_level",
    "run",
    "AnalogLinear",
    "Checkpoint",
    "HostHeldEvaluator",
    "HybridNetwork",
    "LastLayerOptions",
    "Mapping",
    "OnBoardEvaluator",
    "SPSAOptions",
    "TrainingRecord",
    "Dataset",
    "PairEvaluator",
    "SPSAResult",
    "SPSAStep",
    "accuracy",
    "constant",
    "cross_entropy",
    "load_dataset",
    "minimize_spsa",
    "powerseries",
    "spall_gains",
    "train_last_layer",
    "train_softmax_spsa",
    "AntitheticES",
    "AnyPoint",
    "CentralDifferences",
    "Coordinate",
    "Direction",
    "FeedbackAlignmentNetwork",
    "ForwardGradient",
    "GradientEstimator",
    "HostEvaluator",
    "HostHeldAnyEvaluator",
    "SPSAGradient",
    "descend",
    "displacement",
    "random_feedback",
    "EstimatorResult",
    "compare_estimators",
    "standard_estimators",
    "RecoveryOptions",
    "RecoveryReport",
    "drift_recovery",
]
