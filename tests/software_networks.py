"""Networks trained in software by scikit-learn, as a lab brings them to the board: their
weights as ``[inputs + 1, outputs]`` matrices (the bias row last) and their own test
accuracy."""

from __future__ import annotations

import warnings

import numpy as np


def sklearn_mlp(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, hidden: int
) -> tuple[list[np.ndarray], float]:
    """A ``features → hidden → classes`` ReLU network (``MLPClassifier``, 300 iterations,
    seed 0) fitted on the training samples as given, scored on the test ones."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=300, random_state=0)
        clf.fit(x_train, y_train)
    weights = [np.vstack([w, b[None, :]]) for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)]
    return weights, float(clf.score(x_test, y_test))
