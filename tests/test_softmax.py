"""The host's loss and accuracy: exact on a hand-computed case, and labels that cannot be
the rows' refused naming the argument (numpy would broadcast one label over every row,
wrap a negative label round to the last class, or count one past the classes a miss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sidra.training import accuracy, cross_entropy

LOGITS = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]], np.float32)


def test_loss_and_accuracy_of_a_hand_computed_case() -> None:
    labels = np.array([0, 1])
    first = -np.log(np.exp(2.0) / (np.exp(2.0) + 2.0))
    second = -np.log(np.exp(1.0) / (1.0 + np.exp(1.0) + np.exp(3.0)))
    assert cross_entropy(LOGITS, labels) == pytest.approx((first + second) / 2, rel=1e-6)
    assert accuracy(LOGITS, labels) == 0.5


@pytest.mark.parametrize("measure", [cross_entropy, accuracy], ids=["cross_entropy", "accuracy"])
@pytest.mark.parametrize(
    ("logits", "labels", "said"),
    [
        (LOGITS, np.array([1]), "labels: got shape (1,), expected [2]"),
        (LOGITS, np.array([0, 1, 2]), "labels: got shape (3,), expected [2]"),
        (LOGITS, np.array([[0, 1]]), "labels: got shape (1, 2), expected [2]"),
        (LOGITS, np.array([0, -1]), "labels: got -1, expected class indices 0 .. 2"),
        (LOGITS, np.array([0, 3]), "labels: got 3, expected class indices 0 .. 2"),
        (LOGITS, np.array([0.0, 1.0]), "labels: got dtype float64, expected integer"),
        (LOGITS[0], np.array([0]), "logits: got shape (3,), expected [batch >= 1"),
        (LOGITS[:0], np.array([], np.int64), "logits: got shape (0, 3), expected [batch >= 1"),
    ],
)
def test_labels_that_cannot_be_the_rows_are_refused(
    measure: Callable[[Any, Any], float], logits: Any, labels: Any, said: str
) -> None:
    with pytest.raises(ValueError) as refused:
        measure(logits, labels)
    assert said in str(refused.value)
