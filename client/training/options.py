"""Options of the training jobs: frozen, validated, one documented field per setting.

As aihwkit's configuration classes: the docstring under each field gives its
meaning and unit (pydantic reads it as the field's description, so
``sidra train … --help`` shows the same text), choices are enums, not string
literals, and a model refuses unknown names and out-of-range values when it
is built, with an error naming the option, the value and what is allowed
(``pydantic.ValidationError``, a ``ValueError``).

Weight units: the layer's weights as the host holds them; a weight of
``weight_limit`` sits at the edge of the conductance window.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ESTIMATOR_METHODS",
    "CompareOptions",
    "EqPropOptions",
    "EstimatorName",
    "FFEstimator",
    "FFOptions",
    "JobOptions",
    "LastLayerOptions",
    "MLPOptions",
    "MethodName",
    "Nudging",
    "PATOptions",
    "PerturbationMode",
    "RecoveryOptions",
    "SPSAOptions",
    "TuneOptions",
]

Tile = Annotated[int, Field(ge=0)]


class JobOptions(BaseModel):
    """What every job's options share: frozen, no unknown names, documented fields, finite
    numbers (a learning-rate gain or weight limit of inf ran a job of NaN weights)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _whole_numbers_fit_64_bits(cls, value: Any) -> Any:
        """Every whole number fits a signed 64-bit integer, as the state store keeps a
        job's progress (2^63 steps left a job its store could not record, running for
        ever)."""
        for number in value if isinstance(value, tuple | list) else (value,):
            whole = isinstance(number, int) and not isinstance(number, bool)
            if whole and not -(2**63) <= number < 2**63:
                raise ValueError(f"a whole number of at most {2**63 - 1} (64 bits)")
        return value

    @field_validator("tiles", "head_tiles", mode="after", check_fields=False)
    @classmethod
    def _each_tile_once(cls, tiles: tuple[int, ...] | None) -> tuple[int, ...] | None:
        """A tile named twice is a typo (AcquireLease refuses it too)."""
        if tiles is not None and len(set(tiles)) != len(tiles):
            raise ValueError("each tile once")
        return tiles

    def settings(self) -> dict[str, Any]:
        """The options as JSON values (what a run record and a checkpoint store)."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like the original."""
        return self.model_validate(self.model_dump() | changes)


class PerturbationMode(StrEnum):
    """Where SPSA's ±c·Δ is applied."""

    BOARD = "board"
    """On the board by the Perturb RPC; the weights are programmed every step."""
    HOST = "host"
    """Host-held weights programmed every ``program_every`` steps; ±c·Δ added digitally."""


class SPSAOptions(JobOptions):
    """An SPSA training run of a softmax layer (features → classes) on the board."""

    steps: int = Field(4000, ge=1)
    """SPSA steps: one gradient estimate and one update each."""
    seed: int = Field(0, ge=0)
    """Seed of the run's generator: minibatches, perturbation seeds, calibration."""
    batch_size: int = Field(64, ge=1)
    """Training samples per minibatch, shared by every point of a step. A loss
    evaluation costs one whatever its batch, and a larger one is less noisy: with 512
    (and a = 1.0) on-board SPSA held every sidra-y1 pair tried above 93 % in 10,000
    steps, where 64 left one at 91.85 % (docs/training-results.md)."""
    a: float | None = Field(0.5, gt=0.0)
    """Learning-rate gain a in a_k = a/(A + k)^0.602, weight units per unit gradient;
    None = calibrate by Spall's rule 4 (costs loss evaluations, counted)."""
    c: float | None = Field(0.2, gt=0.0)
    """Perturbation gain c in c_k = c/k^0.101, weight units; None = calibrate by Spall's
    rule 3 (the loss noise, at least 0.1)."""
    resamplings: int = Field(1, ge=1)
    """Gradient estimates (fresh Δ each) averaged per step: 2 loss evaluations each."""
    mode: PerturbationMode = PerturbationMode.BOARD
    """board: Perturb RPC, weights programmed every step; host: host-held weights."""
    program_every: int = Field(10, ge=1)
    """Host mode: steps between two Programs of the weights (those steps' minibatches are
    passed on the board ahead, the first call with the Program; 1,024 passes per call
    at most)."""
    blocking: bool = False
    """Reject a step that raises the loss (+1 loss evaluation per step, +1 at the start)."""
    last_avg: int = Field(1, ge=1)
    """Final weights: the mean of the last this many accepted iterates."""
    second_order: bool = False
    """Diagonal 2-SPSA preconditioner: 4 loss evaluations per resampling (host mode)."""
    eval_every: int = Field(500, ge=1)
    """Steps between test-accuracy checkpoints in the record (a test-set pass each)."""
    eval_read_repeats: int = Field(8, ge=1)
    """Analog passes averaged per input when measuring accuracy (the checkpoints and the
    final test and train figures; training is not affected). On ``sidra-y1`` one pass
    measures a trained layer 0.8 points under its noiseless accuracy on average and
    spreads 0.5-0.7 points (std) between two measurements of the same weights; 8 passes
    come within 0.1 point of it."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the layer may be placed on, in this order (empty: any tile, 0 first; a
    served board's tiles another session leases last, and none holding a deployed model); a
    layer with more rows than a tile spans several."""
    weight_limit: float = Field(1.5, gt=0.0)
    """Weight at the edge of the conductance window, weight units; SPSA's bounds. A
    tighter window puts more µS per weight unit, so read noise costs less."""

    @model_validator(mode="after")
    def _second_order_needs_host_mode(self) -> Self:
        if self.second_order and self.mode is PerturbationMode.BOARD:
            raise ValueError(
                "second_order: got True with mode board; 2-SPSA needs mode host "
                "(the Perturb RPC applies one Δ at a time)"
            )
        return self


class LastLayerOptions(JobOptions):
    """A fixed random ReLU feature layer on the board and trained layers above it."""

    hidden: int = Field(256, ge=1)
    """Random ReLU feature units (columns of the feature tile)."""
    epochs: int = Field(40, ge=1)
    """Passes over the training set."""
    batch_size: int = Field(32, ge=1)
    """Training samples per minibatch (one exact-gradient step each)."""
    learning_rate: float = Field(0.2, ge=0.0)
    """Learning rate of the first epoch, weight units per unit gradient."""
    final_learning_rate: float | None = Field(0.02, ge=0.0)
    """Learning rate of the last epoch, reached by linear decay; None keeps it constant.
    Small late steps average the read noise in the gradients instead of following it."""
    threshold: float = Field(0.002, ge=0.0)
    """Weight change below which a cell is not reprogrammed, weight units."""
    trainable: int = Field(1, ge=1, le=2)
    """Layers trained, counted from the top (1: the head; 2: the features too)."""
    seed: int = Field(0, ge=0)
    """Seed of the random features and the minibatch order."""
    feature_tile: Tile | None = None
    """Board tile of the feature layer's first block; None: placed (see ``tiles``)."""
    head_tiles: tuple[Tile, ...] | None = Field(None, min_length=1)
    """Board tiles of the head (one for 256 features; two with its bias as a row on the
    array, 256 + 1 rows); None: placed."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the layers not given tiles above may be placed on, in this order (empty:
    any tile, 0 first; a served board's tiles leased by another session or holding a
    deployed model last): the feature layer first, then the head."""
    read_repeats: int = Field(4, ge=1)
    """Analog passes averaged per input vector in every forward pass (noise / √n)."""
    digital_bias: bool = True
    """Add both layers' biases on the host instead of a bias row on the array."""
    head_weight_limit: float = Field(0.75, gt=0.0)
    """Head weight mapped to the edge of the conductance window, weight units; weights
    beyond it are clipped. A tighter range puts more conductance per weight unit, so
    state-independent read noise costs less."""

    @model_validator(mode="after")
    def _tiles_apart(self) -> Self:
        if self.head_tiles is not None and self.feature_tile in self.head_tiles:
            raise ValueError(
                f"head_tiles: got {list(self.head_tiles)}, must not include "
                f"feature_tile {self.feature_tile}"
            )
        return self


class MLPOptions(JobOptions):
    """A multi-layer perceptron trained through every layer on the board: forward by MVM,
    the error carried down by TransposeMVM, outer products and updates on the host."""

    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field((128, 64), min_length=1)
    """Hidden ReLU layer widths, input side first."""
    epochs: int = Field(30, ge=1)
    """Passes over the training set."""
    batch_size: int = Field(32, ge=1)
    """Training samples per minibatch (one step each)."""
    learning_rate: float = Field(0.1, ge=0.0)
    """Learning rate of the first epoch, weight units per unit gradient."""
    final_learning_rate: float | None = Field(0.01, ge=0.0)
    """Learning rate of the last epoch, reached by linear decay; None keeps it constant."""
    threshold: float = Field(0.002, ge=0.0)
    """Weight change below which a cell is not reprogrammed, weight units."""
    weight_limit: float = Field(1.0, gt=0.0)
    """Weight at the edge of the conductance window in every layer, weight units."""
    read_repeats: int = Field(2, ge=1)
    """Analog passes averaged per vector, forward and backward (noise / √n)."""
    eval_read_repeats: int | None = Field(None, ge=1)
    """Analog passes averaged per vector when the test and training accuracies are
    measured (None: ``read_repeats``)."""
    digital_bias: bool = True
    """Add every layer's bias on the host instead of a bias row on the array."""
    cosine_every: int = Field(25, ge=1)
    """Steps between two measurements of each layer's gradient against the exact one
    (host backpropagation through the host's copy of the weights; no board call)."""
    seed: int = Field(0, ge=0)
    """Seed of the initial weights and the minibatch order."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the layers may be placed on, in this order (empty: any tile, 0 first; a
    served board's tiles another session leases last, and none holding a deployed model): the
    input layer first."""
    trainable: int | None = Field(None, ge=1)
    """Layers trained, counted from the output (None: every layer). 1 trains the output
    layer alone on the same network, the hidden layers left at their random initial
    weights: the baseline full-depth training is measured against."""

    @model_validator(mode="after")
    def _trainable_within_depth(self) -> Self:
        depth = len(self.hidden) + 1
        if self.trainable is not None and self.trainable > depth:
            raise ValueError(
                f"trainable: got {self.trainable}, expected 1 .. {depth} (the network's "
                f"layers: {len(self.hidden)} hidden and the output)"
            )
        return self


class PATOptions(MLPOptions):
    """Physics-aware training (Wright et al. 2022) of the :class:`MLPOptions` perceptron:
    the forward pass on the board, the backward pass through the board's twin (its
    characterized profile) at the board's own activations; or, ``in_silico``, the
    whole training on the twin and the weights deployed to the board at the end."""

    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field((256, 128), min_length=1)
    """Hidden ReLU layer widths, input side first (wider than the default of ``sidra
    train mlp``, :class:`MLPOptions`: each layer still fits one 256 × 256 tile)."""
    read_repeats: int = Field(4, ge=1)
    """Analog passes averaged per vector in the forward pass (noise / √n): no pass goes
    to a TransposeMVM, so twice the default of ``sidra train mlp`` (:class:`MLPOptions`)
    on the same budget."""
    eval_read_repeats: int | None = Field(16, ge=1)
    """Analog passes averaged per vector when the test and training accuracies are
    measured (None: ``read_repeats``)."""
    board_epochs: int = Field(10, ge=1)
    """Epochs at the end of the schedule run on the board (every epoch when the schedule
    is no longer); the ones before run on the twin (an emulator with the board's
    profile), as chip-in-the-loop fine-tuning does (Wan et al. 2022): those cost no
    board time or cell writes, and the board's epochs correct what the twin does not
    know. How many follows from how well the twin describes the board (``sidra board
    compare``, docs/digital-twin.md): 5 tied with ``in_silico`` on sidra-y1 boards
    whose twin is within their read noise, where 10 fell behind; a board known only
    statistically needs 10 or more."""
    in_silico: bool = False
    """Train on the twin alone (an emulator with the board's profile, forward and
    backward; every epoch, whatever ``board_epochs``) and deploy the trained weights to
    the board: the baseline physics-aware training is measured against."""
    twin_seed: int | None = Field(None, ge=0)
    """Seed of the twin emulator's own devices (its epochs, or ``in_silico``), drawn
    independently of the board's (None: the run's seed + 1,000,000)."""

    @property
    def twin_epochs(self) -> int:
        """Epochs at the start of the schedule run on the twin (``in_silico``: all)."""
        if self.in_silico:
            return self.epochs
        return max(0, self.epochs - self.board_epochs)

    @property
    def twin_device_seed(self) -> int:
        """The twin emulator's seed."""
        return self.seed + 1_000_000 if self.twin_seed is None else self.twin_seed


class PATJobOptions(PATOptions):
    """:class:`PATOptions` of a job run inside a server (``sidra train pat --remote-job``):
    the twin's profile travels with the options, as the server cannot read the client's
    file; without one the job characterizes the board itself."""

    twin_profile_toml: str = ""
    """The twin's board profile: the text of a ``sidra board characterize`` file (TOML).
    Empty: the job characterizes the board first, next to it (drift skipped), and so
    leases the whole board while it does: characterization programs every tile,
    overwriting what the tiles held (the state store records those Programs); then it
    keeps only the tiles it trains on."""

    def settings(self) -> dict[str, Any]:
        """The options without the profile's text (kept in the record as twin.toml)."""
        return {k: v for k, v in super().settings().items() if k != "twin_profile_toml"}


class FFEstimator(StrEnum):
    """Where each forward-forward layer's update comes from."""

    EXACT = "exact"
    """The exact gradient of the layer's goodness loss, from its own input and output."""
    SPSA = "spsa"
    """Layer-local SPSA on the goodness loss: that layer perturbed on the board."""


class FFOptions(JobOptions):
    """Forward-forward training (Hinton 2022): every layer's forward pass on the board,
    each layer trained alone on its goodness, no backward pass."""

    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field((256, 256), min_length=1)
    """Layer widths (ReLU units), input side first; the first layer's inputs are the
    features and the one-hot label."""
    estimator: FFEstimator = FFEstimator.EXACT
    """exact: each layer's exact local gradient, Adam on the host; spsa: layer-local SPSA
    on the goodness, ±c·Δ applied on the board (PerturbedMVM), no gradient computed."""
    epochs: int = Field(12, ge=1)
    """Passes over the training set."""
    batch_size: int = Field(32, ge=1)
    """Training samples per minibatch (one step each): every sample once with its own
    label (positive) and once with a wrong one drawn at random (negative)."""
    learning_rate: float = Field(0.01, ge=0.0)
    """exact: Adam step size of the first epoch, weight units per step."""
    final_learning_rate: float | None = Field(0.001, ge=0.0)
    """exact: Adam step size of the last epoch, reached by linear decay; None keeps it
    constant."""
    goodness_threshold: float = Field(2.0, gt=0.0)
    """θ: a layer's goodness (mean squared activation of its units) above θ says
    positive; the loss is softplus(θ − g) on positive and softplus(g − θ) on negative data."""
    label_scale: float = Field(2.0, gt=0.0)
    """Value of the label's one-hot inputs appended to the features (standardised
    feature units; the input clip is 4)."""
    spsa_a: float = Field(2.0, gt=0.0)
    """spsa: learning-rate gain a in a_k = a/(A + k)^0.602, A = 10 % of the steps; weight
    units per unit gradient."""
    spsa_c: float = Field(0.1, gt=0.0)
    """spsa: perturbation gain c in c_k = c/k^0.101, weight units."""
    resamplings: int = Field(1, ge=1)
    """spsa: estimates (fresh Δ each) averaged per layer and step, 2 loss evaluations each."""
    eval_every: int = Field(1, ge=1)
    """Epochs between test-accuracy checkpoints (the last epoch always has one): each
    shows every test sample with every label, a pass of classes × samples per layer."""
    threshold: float = Field(0.002, ge=0.0)
    """Weight change below which a cell is not reprogrammed, weight units."""
    weight_limit: float = Field(1.0, gt=0.0)
    """Weight at the edge of the conductance window in every layer, weight units."""
    read_repeats: int = Field(2, ge=1)
    """Analog passes averaged per vector (noise / √n)."""
    digital_bias: bool | None = None
    """Add every layer's bias on the host instead of a bias row on the array; None: on the
    host for exact, on the array for spsa (the board's perturbation must reach it)."""
    seed: int = Field(0, ge=0)
    """Seed of the initial weights, the minibatch order, the wrong labels and Δ."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the layers may be placed on, in this order (empty: any tile, 0 first; a
    served board's tiles another session leases last, and none holding a deployed model): the
    input layer first."""

    @model_validator(mode="after")
    def _spsa_perturbs_the_bias_row(self) -> Self:
        if self.estimator is FFEstimator.SPSA and self.digital_bias:
            raise ValueError(
                "digital_bias: got True with estimator spsa; the board perturbs the "
                "bias with the weights (PerturbedMVM), so it must be a row on the array"
            )
        return self

    @property
    def bias_on_host(self) -> bool:
        """Whether the biases are added on the host (``digital_bias`` resolved)."""
        if self.digital_bias is None:
            return self.estimator is FFEstimator.EXACT
        return self.digital_bias


class EstimatorName(StrEnum):
    """The gradient estimators ``compare`` can run (see ``standard_estimators``)."""

    SPSA = "spsa"
    """SPSA, one Rademacher perturbation per step (2 loss evaluations)."""
    SPSA_4 = "spsa-4"
    """SPSA, four perturbations averaged per step (8 loss evaluations)."""
    CENTRAL_DIFFERENCES = "central-differences"
    """Every weight ±h in turn (2 loss evaluations per weight)."""
    FORWARD_GRADIENT = "forward-gradient"
    """One Gaussian direction against the unperturbed loss (2 loss evaluations)."""
    ANTITHETIC_ES = "antithetic-es"
    """One antithetic Gaussian pair (2 loss evaluations)."""


class MethodName(StrEnum):
    """The training methods ``compare`` runs: the gradient estimators above (host-held
    weights, digital perturbations) and whole training algorithms on the board."""

    SPSA = "spsa"
    """SPSA, one Rademacher perturbation per step (2 loss evaluations)."""
    SPSA_4 = "spsa-4"
    """SPSA, four perturbations averaged per step (8 loss evaluations)."""
    CENTRAL_DIFFERENCES = "central-differences"
    """Every weight ±h in turn (2 loss evaluations per weight)."""
    FORWARD_GRADIENT = "forward-gradient"
    """One Gaussian direction against the unperturbed loss (2 loss evaluations)."""
    ANTITHETIC_ES = "antithetic-es"
    """One antithetic Gaussian pair (2 loss evaluations)."""
    SPSA_BOARD = "spsa-board"
    """SPSA with the perturbations written on the board (``sidra train spsa --mode
    board``), the weights programmed every step (2 loss evaluations per step)."""
    LAST_LAYER = "last-layer"
    """Random ReLU features on the board, the head trained by its exact gradient
    (``sidra train last-layer``; 1 loss evaluation per minibatch step)."""
    MLP = "mlp"
    """Every layer forward by MVM and backward by TransposeMVM (``sidra train mlp``;
    1 loss evaluation per minibatch step)."""
    FF = "ff"
    """Forward-forward, each layer's exact local goodness gradient (``sidra train ff``;
    1 loss evaluation per layer and minibatch step)."""
    FF_SPSA = "ff-spsa"
    """Forward-forward with layer-local SPSA on the goodness, each layer perturbed on the
    board (``sidra train ff --estimator spsa``; 2 loss evaluations per layer and
    minibatch step)."""
    EQPROP = "eqprop"
    """Equilibrium propagation, free and nudged phases settled on the board (``sidra
    train eqprop``; 1 loss evaluation per minibatch step)."""


ESTIMATOR_METHODS = frozenset(MethodName(str(name)) for name in EstimatorName)
"""The methods that are gradient estimators on host-held weights."""


class CompareOptions(JobOptions):
    """Training methods compared on one loss-evaluation budget and one board, over seeds."""

    budget: int = Field(4_000, ge=1)
    """Loss evaluations each method may spend in each run (whole steps, or for the
    minibatch-gradient algorithms whole epochs, only)."""
    a: float = Field(0.5, gt=0.0)
    """Learning-rate gain a in a_k = a/(A + k)^0.602, A = 10 % of the steps, of the SPSA
    methods and the estimators; weight units per unit gradient."""
    c: float = Field(0.2, gt=0.0)
    """Perturbation size of the SPSA methods and the estimators (SPSA c, difference step
    h, forward-gradient ε, ES σ), weight units."""
    seeds: tuple[Annotated[int, Field(ge=0)], ...] = Field((0, 1, 2), min_length=1)
    """Seeds: every method runs once per seed, its generator seeded with it (the same
    seeds for all methods); mean and spread are taken over them."""
    batch_size: int = Field(64, ge=1)
    """Training samples per minibatch of the SPSA methods and the estimators, shared by
    every point of an estimate (the other algorithms keep their own)."""
    program_every: int = Field(10, ge=1)
    """Steps between two Programs of the estimators' host-held weights."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the layers may be placed on, in this order (empty: any tile, 0 first; a
    served board's tiles another session leases last, and none holding a deployed model); a
    layer with more rows than a tile spans several."""
    methods: tuple[MethodName, ...] = Field(tuple(MethodName), min_length=1)
    """Methods to run, in this order for each seed (the board's state carries from one
    run to the next)."""

    @model_validator(mode="after")
    def _each_once(self) -> Self:
        for name in ("seeds", "methods"):
            given = [str(v) for v in getattr(self, name)]
            if len(set(given)) != len(given):
                raise ValueError(f"{name}: got {given}, each at most once")
        return self


class RecoveryOptions(JobOptions):
    """Deploy a digitally trained network, age the board, calibrate, retrain the head."""

    hidden: int = Field(256, ge=1)
    """Hidden ReLU units of the digitally trained 64→hidden→10 network."""
    age_days: float = Field(365.0, ge=0.0)
    """Board time between deployment and recovery, days (86,400 s each)."""
    calibrate: bool = True
    """Run global drift compensation on every tile before retraining."""
    epochs: int = Field(20, ge=1)
    """Last-layer retraining epochs on the board."""
    learning_rate: float = Field(0.05, ge=0.0)
    """Retraining learning rate, weight units per unit gradient."""
    batch_size: int = Field(32, ge=1)
    """Training samples per retraining minibatch."""
    threshold: float = Field(0.05, ge=0.0)
    """Reprogram a head cell only once its target moved this far, weight units: a few
    times the head's PCM programming noise (0.26–1.05 µS at ≈ 32 µS per weight unit,
    0.01–0.03), so a write moves the weight by more than it adds noise."""
    read_repeats: int = Field(16, ge=1)
    """Analog passes averaged per input during retraining."""
    eval_read_repeats: int = Field(64, ge=1)
    """Analog passes averaged per input when measuring accuracy."""
    reference_column: bool = True
    """Offset mapping with a drifting reference column per tile (see AnalogLinear)."""
    seed: int = Field(0, ge=0)
    """Seed of the digital network and the retraining minibatch order."""


class TuneOptions(JobOptions):
    """A trained model's top layers trained again on the board it runs on (hardware-aware
    fine-tuning): forward passes on the board, exact gradients on the host from its own
    outputs, the error carried down by TransposeMVM; the layers below stay as they are."""

    epochs: int = Field(10, ge=1)
    """Passes over the training set."""
    trainable: int = Field(1, ge=1)
    """Layers trained, counted from the top (1: the output layer); at most the model's."""
    batch_size: int = Field(32, ge=1)
    """Training samples per minibatch (one exact-gradient step each)."""
    learning_rate: float = Field(0.05, ge=0.0)
    """Learning rate of the first epoch, weight units per unit gradient: a model already
    trained needs smaller steps than one trained from scratch."""
    final_learning_rate: float | None = Field(0.005, ge=0.0)
    """Learning rate of the last epoch, reached by linear decay; None keeps it constant."""
    threshold_share: float = Field(0.02, ge=0.0, le=1.0)
    """Program a cell again only once its weight moved this share of its layer's weight
    limit (the weight a half conductance window stands for): 0.02 is 0.4 µS on a 1–40 µS
    window, about a write's own programming noise, so a write moves the cell by more than
    it adds noise."""
    read_repeats: int = Field(4, ge=1)
    """Analog passes averaged per input vector in every forward pass (noise / √n)."""
    eval_read_repeats: int = Field(16, ge=1)
    """Analog passes averaged per input when measuring accuracy, before and after."""
    seed: int = Field(0, ge=0)
    """Seed of the minibatch order."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the model's layers may go on, in order (empty: any, as sidra model
    deploy places it)."""


class TuneJobOptions(TuneOptions):
    """:class:`TuneOptions` of a job run inside a server (``sidra model tune
    --remote-job``): the model travels with the options, as the server cannot read the
    client's file, and a deployment tuned by name is registered again by the server when
    the job ends, whether or not its client still follows it."""

    model_file_base64: str = Field(min_length=1)
    """The model to tune: the bytes of its model file (``model.npz``), base64."""
    held: bool = False
    """Find the model on ``tiles`` (aged as they are) instead of programming it."""
    calibrate: bool = False
    """Have the board rescale each of the model's tiles first (and its trained layers'
    again once rewritten)."""
    deployment: str = ""
    """The deployment tuned (its tiles: ``tiles``, ``held``): registered again in place of
    itself as its tiles hold the tuned model when the job ends, as the job's principal
    (its principal's own deployment: another's is refused when the job is submitted).
    Empty: no deployment."""

    def settings(self) -> dict[str, Any]:
        """The options without the model's bytes (the record keeps the tuned model, which
        names what it was tuned from)."""
        return {k: v for k, v in super().settings().items() if k != "model_file_base64"}


class Nudging(StrEnum):
    """Which nudged phases equilibrium propagation contrasts."""

    POSITIVE = "positive"
    """One nudged phase at +β against the free equilibrium (Scellier & Bengio 2017): the
    estimate's bias grows with β."""
    SYMMETRIC = "symmetric"
    """Nudged phases at +β and −β, contrasted with each other (Laborieux et al. 2021):
    the first-order bias in β cancels, for one more phase of settling."""


class EqPropOptions(JobOptions):
    """Equilibrium propagation: a layered network with symmetric couplings settles to an
    energy minimum by repeated MVM (bottom-up) and TransposeMVM (top-down) on the same
    tiles, free and nudged towards the target; the update contrasts the equilibria."""

    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field((128,), min_length=1)
    """Hidden layer widths, input side first (states in [0, 1], hard-sigmoid)."""
    epochs: int = Field(5, ge=1)
    """Passes over the training set."""
    batch_size: int = Field(32, ge=1)
    """Training samples per minibatch: one free and one or two nudged phases each."""
    learning_rate: float = Field(0.3, ge=0.0)
    """Learning rate of the first epoch, weight units per unit gradient estimate."""
    final_learning_rate: float | None = Field(0.03, ge=0.0)
    """Learning rate of the last epoch, reached by linear decay; None keeps it constant."""
    beta: float = Field(0.5, gt=0.0, lt=1.0)
    """Nudging strength β: the output cost ½‖y − onehot‖² enters the energy times β
    (state units; the gradient estimate divides the contrast by β)."""
    nudging: Nudging = Nudging.SYMMETRIC
    """positive: free and +β phases; symmetric: +β and −β phases (bias cancels)."""
    free_iterations: int = Field(20, ge=1, le=10_000)
    """Cap on the free phase's settling sweeps (one MVM and one TransposeMVM per coupling
    above the input each); the model file's settle readout keeps it (at most
    sidra.training.model.MAX_SETTLE_ITERATIONS)."""
    nudged_iterations: int = Field(10, ge=1, le=10_000)
    """Cap on each nudged phase's settling sweeps (from the free equilibrium)."""
    tolerance: float = Field(0.01, gt=0.0)
    """Settled when no state changed by more than this in a sweep, state units ([0, 1])."""
    damping: float = Field(0.5, gt=0.0, le=1.0)
    """Fraction of the way each sweep moves a state to its fixed-point value (1: plain
    fixed-point iteration; less averages the read noise of successive sweeps)."""
    threshold: float = Field(0.002, ge=0.0)
    """Weight change below which a cell is not reprogrammed, weight units."""
    weight_limit: float = Field(0.3, gt=0.0)
    """Weight at the edge of the conductance window in every coupling, weight units. The
    states lie in [0, 1], so read noise (a fixed part of the window) weighs on them in
    proportion: Glorot-initialised couplings on digits stay within about ±0.3."""
    read_repeats: int = Field(2, ge=1)
    """Analog passes averaged per vector, both directions (noise / √n)."""
    init_scale: float = Field(0.5, gt=0.0)
    """Initial couplings: uniform within this fraction of the Glorot bound
    √(6 / (n_in + n_out)), dimensionless. At the full bound many hidden states start
    clipped at 0 or 1 and on some seeds an output unit never recovers (a host
    simulation of this network over seeds 0-7: 65-95 %, mean 82.7 %, against
    96.9-97.6 %, mean 97.3 %, at half the bound)."""
    cosine_every: int = Field(25, ge=1)
    """Steps between two measurements of each coupling's update against the exact
    gradient of the cost at the free equilibrium (host, implicit differentiation through
    the host's copy of the weights; no board call)."""
    seed: int = Field(0, ge=0)
    """Seed of the initial weights and the minibatch order."""
    tiles: tuple[Tile, ...] = ()
    """Board tiles the couplings may be placed on, in this order (empty: any tile, 0 first;
    a served board's tiles another session leases last, and none holding a deployed model): the
    input coupling first."""
