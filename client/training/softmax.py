"""Softmax classification loss and accuracy on the host (the board computes the logits)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["accuracy", "cross_entropy", "softmax"]


def cross_entropy(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """Mean softmax cross-entropy (nats) of ``logits`` [batch, classes] against
    ``labels`` [batch] (each a class index)."""
    _check(logits, labels)
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def accuracy(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """Fraction of the rows of ``logits`` [batch, classes] whose largest logit is the
    row's label in ``labels`` [batch]."""
    _check(logits, labels)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Row-wise softmax probabilities of ``logits`` [batch, classes]."""
    p: npt.NDArray[np.float32] = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p.astype(np.float32, copy=False)


def _check(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> None:
    """ValueError naming the argument when ``labels`` cannot be the labels of the rows of
    ``logits``: numpy would broadcast one label over every row, wrap a negative one
    round to the last class, or count a label past the classes as a miss."""
    shape, given = np.shape(logits), np.shape(labels)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"logits: got shape {shape}, expected [batch >= 1, classes >= 1]")
    if given != shape[:1]:
        raise ValueError(f"labels: got shape {given}, expected [{shape[0]}], one per row of logits")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels: got dtype {labels.dtype}, expected integer class indices")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= shape[1]:
        wrong = low if low < 0 else high
        raise ValueError(f"labels: got {wrong}, expected class indices 0 .. {shape[1] - 1}")
