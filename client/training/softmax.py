"""Softmax classification loss and accuracy on the host (the board computes the logits)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["accuracy", "cross_entropy", "softmax"]


def cross_entropy(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """Mean softmax cross-entropy (nats) of ``logits`` [batch, classes]."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def accuracy(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """Fraction of rows whose largest logit is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Row-wise softmax probabilities of ``logits`` [batch, classes]."""
    p: npt.NDArray[np.float32] = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p.astype(np.float32, copy=False)
