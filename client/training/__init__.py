"""Training with the board in the loop: SPSA, last-layer, hybrid and full-depth training,
equilibrium propagation, estimators; trained models deployed and run on a board.

Everything here needs only the :class:`sidra.drivers.Board` interface, so it runs on a
local driver (``open_board("emu://")``) or a remote board alike and imports no gRPC.
scikit-learn (data sets) and matplotlib (plots) are the optional ``training`` extra,
imported only where they are used.

The names below are imported when first used (PEP 562): ``sidra.training.atomic_files``
or ``from sidra.training import Dataset`` imports what that needs, not every training
method (a command line that only reads a record starts in half the time).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        TuneJobOptions,
        TuneOptions,
    )
    from sidra.training.pat import TwinNetwork, train_pat
    from sidra.training.placement import PlacementError
    from sidra.training.records import STOPPED_AT, Checkpoint, TrainingRecord
    from sidra.training.recovery import RecoveryReport, drift_recovery
    from sidra.training.schedules import constant, powerseries, spall_gains
    from sidra.training.softmax import accuracy, cross_entropy
    from sidra.training.spsa import (
        SPSA,
        Ask,
        Evaluator,
        PairEvaluator,
        Point,
        SPSAResult,
        SPSASettings,
        SPSAStep,
        minimize_spsa,
        perturbation_matrix,
        run,
    )
    from sidra.training.stopping import RunInterrupted
    from sidra.training.tuning import TuneResult, tune_model
    from sidra.training.twin import TwinLayer, TwinPhysics

__all__ = [
    "PlacementError",
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
    "Point",
    "SPSAResult",
    "SPSAStep",
    "accuracy",
    "constant",
    "cross_entropy",
    "load_dataset",
    "minimize_spsa",
    "perturbation_matrix",
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
    "TuneJobOptions",
    "TuneOptions",
    "TuneResult",
    "tune_model",
]

_WHERE = {
    "TuneJobOptions": "sidra.training.options",
    "TuneOptions": "sidra.training.options",
    "TuneResult": "sidra.training.tuning",
    "tune_model": "sidra.training.tuning",
    "CostLedger": "sidra.training.accounting",
    "JobCounts": "sidra.training.accounting",
    "JobMeter": "sidra.training.accounting",
    "AnalogLinear": "sidra.training.analog_layer",
    "Mapping": "sidra.training.analog_layer",
    "SPSACheckpoint": "sidra.training.board_spsa",
    "SPSAJob": "sidra.training.board_spsa",
    "train_softmax_spsa": "sidra.training.board_spsa",
    "Calibration": "sidra.training.calibration",
    "calibrate": "sidra.training.calibration",
    "noise_level": "sidra.training.calibration",
    "compare_methods": "sidra.training.compare",
    "standard_estimators": "sidra.training.compare",
    "Comparison": "sidra.training.compare_record",
    "MethodResult": "sidra.training.compare_record",
    "MethodSummary": "sidra.training.compare_record",
    "BUNDLED": "sidra.training.datasets",
    "FILE_SUFFIXES": "sidra.training.datasets",
    "Dataset": "sidra.training.datasets",
    "load_dataset": "sidra.training.datasets",
    "DeployedModel": "sidra.training.deployment",
    "LayerProgramming": "sidra.training.deployment",
    "ModelEvaluation": "sidra.training.deployment",
    "EquilibriumNetwork": "sidra.training.eqprop",
    "equilibrium_gradients": "sidra.training.eqprop",
    "train_eqprop": "sidra.training.eqprop",
    "AntitheticES": "sidra.training.estimators",
    "AnyPoint": "sidra.training.estimators",
    "CentralDifferences": "sidra.training.estimators",
    "Coordinate": "sidra.training.estimators",
    "Direction": "sidra.training.estimators",
    "ForwardGradient": "sidra.training.estimators",
    "GradientEstimator": "sidra.training.estimators",
    "HostEvaluator": "sidra.training.estimators",
    "HostHeldAnyEvaluator": "sidra.training.estimators",
    "SPSAGradient": "sidra.training.estimators",
    "descend": "sidra.training.estimators",
    "displacement": "sidra.training.estimators",
    "HostHeldEvaluator": "sidra.training.evaluators",
    "OnBoardEvaluator": "sidra.training.evaluators",
    "FeedbackAlignmentNetwork": "sidra.training.feedback_alignment",
    "random_feedback": "sidra.training.feedback_alignment",
    "ForwardForwardNetwork": "sidra.training.forward_forward",
    "train_forward_forward": "sidra.training.forward_forward",
    "numerical_gradient": "sidra.training.gradients",
    "numerical_jacobian": "sidra.training.gradients",
    "HybridNetwork": "sidra.training.hybrid",
    "train_last_layer": "sidra.training.hybrid",
    "model_from_weights": "sidra.training.importing",
    "exact_gradients": "sidra.training.mlp",
    "train_mlp": "sidra.training.mlp",
    "PlacementError": "sidra.training.placement",
    "MODEL_FILE": "sidra.training.model",
    "GoodnessReadout": "sidra.training.model",
    "ModelFileError": "sidra.training.model",
    "ModelInputs": "sidra.training.model",
    "ModelLayer": "sidra.training.model",
    "TrainedModel": "sidra.training.model",
    "CompareOptions": "sidra.training.options",
    "EqPropOptions": "sidra.training.options",
    "EstimatorName": "sidra.training.options",
    "FFEstimator": "sidra.training.options",
    "FFOptions": "sidra.training.options",
    "JobOptions": "sidra.training.options",
    "LastLayerOptions": "sidra.training.options",
    "MethodName": "sidra.training.options",
    "MLPOptions": "sidra.training.options",
    "Nudging": "sidra.training.options",
    "PATJobOptions": "sidra.training.options",
    "PATOptions": "sidra.training.options",
    "PerturbationMode": "sidra.training.options",
    "RecoveryOptions": "sidra.training.options",
    "SPSAOptions": "sidra.training.options",
    "TwinNetwork": "sidra.training.pat",
    "train_pat": "sidra.training.pat",
    "STOPPED_AT": "sidra.training.records",
    "Checkpoint": "sidra.training.records",
    "TrainingRecord": "sidra.training.records",
    "RecoveryReport": "sidra.training.recovery",
    "drift_recovery": "sidra.training.recovery",
    "constant": "sidra.training.schedules",
    "powerseries": "sidra.training.schedules",
    "spall_gains": "sidra.training.schedules",
    "accuracy": "sidra.training.softmax",
    "cross_entropy": "sidra.training.softmax",
    "SPSA": "sidra.training.spsa",
    "Ask": "sidra.training.spsa",
    "Evaluator": "sidra.training.spsa",
    "PairEvaluator": "sidra.training.spsa",
    "Point": "sidra.training.spsa",
    "SPSAResult": "sidra.training.spsa",
    "SPSASettings": "sidra.training.spsa",
    "SPSAStep": "sidra.training.spsa",
    "minimize_spsa": "sidra.training.spsa",
    "perturbation_matrix": "sidra.training.spsa",
    "run": "sidra.training.spsa",
    "RunInterrupted": "sidra.training.stopping",
    "TwinLayer": "sidra.training.twin",
    "TwinPhysics": "sidra.training.twin",
}
"""The module each name of :data:`__all__` comes from."""


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sidra.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found here from now on, without this call
    return value
