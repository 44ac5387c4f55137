"""Feedback alignment (Lillicrap et al., Nat. Commun. 7:13276, 2016) on the hybrid network.

``HybridNetwork`` sends the error down through TransposeMVM,
δ_l = (δ_(l+1)·W_(l+1)ᵀ) ⊙ relu′(z_l). Feedback alignment replaces W_(l+1)ᵀ by
a fixed random matrix B_(l+1) drawn once: δ_l = (δ_(l+1)·B_(l+1)) ⊙ relu′(z_l).
Forward passes stay on the board; the backward pass is a small host matmul,
so no TransposeMVM is issued and the backward path needs neither the
programmed weights nor a transposed read. Weight gradients, updates and
thresholded programming are the hybrid network's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sidra.training.analog_layer import AnalogLinear
from sidra.training.hybrid import HybridNetwork

__all__ = ["FeedbackAlignmentNetwork", "random_feedback"]

Array = npt.NDArray[np.float32]


def random_feedback(layers: Sequence[AnalogLinear], rng: np.random.Generator) -> list[Array]:
    """B_l ~ N(0, 1/inputs_l) of shape (outputs_l, inputs_l) for layers 1 .. L−1, the
    scale of a LeCun-initialised W_lᵀ (layer 0 sends no error down)."""
    return [
        rng.normal(0.0, 1.0 / np.sqrt(layer.inputs), (layer.outputs, layer.inputs)).astype(
            np.float32
        )
        for layer in layers[1:]
    ]


class FeedbackAlignmentNetwork(HybridNetwork):
    """A ``HybridNetwork`` whose error reaches layer l − 1 through ``feedback[l − 1]``
    (B_l, shape (outputs_l, inputs_l), no bias row) instead of W_lᵀ."""

    def __init__(
        self,
        layers: Sequence[AnalogLinear],
        weights: Sequence[Array],
        feedback: Sequence[npt.ArrayLike],
        trainable: int = 1,
        *,
        threshold: float = 0.0,
    ) -> None:
        matrices = [np.array(b, dtype=np.float32) for b in feedback]
        if len(matrices) != len(layers) - 1:
            raise ValueError(
                f"feedback: got {len(matrices)} matrices, expected {len(layers) - 1} "
                "(one per layer above the first)"
            )
        for k, (layer, b) in enumerate(zip(layers[1:], matrices, strict=True), start=1):
            if b.shape != (layer.outputs, layer.inputs):
                raise ValueError(
                    f"feedback for layer {k}: got shape {b.shape}, "
                    f"expected {(layer.outputs, layer.inputs)}"
                )
        super().__init__(layers, weights, trainable, threshold=threshold)
        self.feedback = matrices
        """Fixed random B_l for layers 1 .. L−1: never updated."""

    def backward(self, i: int, delta: Array) -> Array:
        """Error at the input of layer ``i``: δ·B_i, on the host (replaces δ·W_iᵀ)."""
        result: Array = delta @ self.feedback[i - 1]
        return result
