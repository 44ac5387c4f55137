"""An argument error's value crosses gRPC typed (ErrorInfo "value_json"), as the board's
own check raised it; what JSON cannot write exactly goes as text only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sidra.hil.error_values import JSON_LIMIT, value_from, value_json


@pytest.mark.parametrize(
    ("value", "back"),
    [
        (9, 9),
        (-0.25, -0.25),
        (True, True),
        (None, None),
        ((2, 63), [2, 63]),  # a tuple comes back a list
        ([[0, 1], "x"], [[0, 1], "x"]),
        (np.int64(5), 5),
        (np.float32(0.5), 0.5),
        (["µS", 2], ["µS", 2]),
    ],
)
def test_plain_values_come_back_typed(value: Any, back: Any) -> None:
    text = value_json(value)
    assert text is not None
    got = value_from({"value": str(value), "value_json": text})
    assert got == back and type(got) is type(back)


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, object(), {"a": 1}, np.zeros(3), ["x" * JSON_LIMIT], "tile"],
    ids=["nan", "inf", "object", "dict", "array", "long", "text-itself"],
)
def test_other_values_travel_as_text_only(value: Any) -> None:
    assert value_json(value) is None
    assert value_from({"value": "as text"}) == "as text"


def test_a_value_json_that_does_not_read_falls_back_to_the_text() -> None:
    assert value_from({"value": "9", "value_json": "{not json"}) == "9"
