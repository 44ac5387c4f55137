"""Training with the board in the loop: SPSA, last-layer, hybrid and full-depth training,
equilibrium propagation, estimators; trained models deployed and run on a board.

Everything here needs only the :class:`sidra.drivers.Board` interface, so it runs on a
local driver (``open_board("emu://")``) or a remote board alike and imports no gRPC.
scikit-learn (data sets) and matplotlib (plots) are the optional ``training`` extra,
imported only where they are used.
"""

from sidra.training.accounting import CostLedger, JobCounts, JobMeter
from sidra.training.analog_layer import AnalogLinear, Mapping
from sidra.training.board_spsa import SPSACheckpoint, SPSAJob, train_softmax_spsa
from sidra.training.calibration import Calibration, calibrate, noise_level
from sidra.training.compare import compare_methods, standard_estimators
from sidra.training.compare_record import Comparison, MethodResult, MethodSummary
from sidra.training.datasets import BUNDLED, FILE_SUFFIXES, Dataset, load_dataset
from sidra.training.deployment import DeployedModel, LayerProgramming, ModelEvaluation
from sidra.training.eqprop import EquilibriumNetwork, equilibrium_gradients, train_eqprop
from sidra.training.estimators import (
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
from sidra.training.evaluators import HostHeldEvaluator, OnBoardEvaluator
from sidra.training.feedback_alignment import FeedbackAlignmentNetwork, random_feedback
from sidra.training.forward_forward import ForwardForwardNetwork, train_forward_forward
from sidra.training.gradients import numerical_gradient, numerical_jacobian
from sidra.training.hybrid import HybridNetwork, train_last_layer
from sidra.training.importing import model_from_weights
from sidra.training.mlp import exact_gradients, train_mlp
from sidra.training.model import (
    MODEL_FILE,
    GoodnessReadout,
    ModelFileError,
    ModelInputs,
    ModelLayer,
    TrainedModel,
)
from sidra.training.options import (
    CompareOptions,
    EqPropOptions,
    EstimatorName,
    FFEstimator,
    FFOptions,
    JobOptions,
    LastLayerOptions,
    MethodName,
    MLPOptions,
    Nudging,
    PATJobOptions,
    PATOptions,
    PerturbationMode,
    RecoveryOptions,
    SPSAOptions,
)
from sidra.training.pat import TwinNetwork, train_pat
from sidra.training.records import STOPPED_AT, Checkpoint, TrainingRecord
from sidra.training.recovery import RecoveryReport, drift_recovery
from sidra.training.schedules import constant, powerseries, spall_gains
from sidra.training.softmax import accuracy, cross_entropy
from sidra.training.spsa import (
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
from sidra.training.stopping import RunInterrupted
from sidra.training.twin import TwinLayer, TwinPhysics

__all__ = [
    "FFEstimator",
    "FFOptions",
    "ForwardForwardNetwork",
    "train_forward_forward",
    "MLPOptions",
    "exact_gradients",
    "train_mlp",
    "PATJobOptions",
    "PATOptions",
    "TwinLayer",
    "TwinNetwork",
    "TwinPhysics",
    "train_pat",
    "EqPropOptions",
    "EquilibriumNetwork",
    "Nudging",
    "equilibrium_gradients",
    "train_eqprop",
    "CompareOptions",
    "CostLedger",
    "EstimatorName",
    "MethodName",
    "Comparison",
    "MethodResult",
    "MethodSummary",
    "JobCounts",
    "JobMeter",
    "JobOptions",
    "PerturbationMode",
    "SPSACheckpoint",
    "SPSAJob",
    "numerical_gradient",
    "numerical_jacobian",
    "BUNDLED",
    "FILE_SUFFIXES",
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
    "STOPPED_AT",
    "RunInterrupted",
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
    "compare_methods",
    "standard_estimators",
    "RecoveryOptions",
    "RecoveryReport",
    "drift_recovery",
    "MODEL_FILE",
    "DeployedModel",
    "LayerProgramming",
    "ModelEvaluation",
    "ModelFileError",
    "GoodnessReadout",
    "ModelInputs",
    "ModelLayer",
    "TrainedModel",
    "model_from_weights",
]
