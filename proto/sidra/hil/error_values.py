"""An argument error's value as ErrorInfo carries it (board.proto, "Errors"): metadata
``value`` is its text for people; ``value_json``, when the value is a number, a
boolean or null, or a list (nested too) of those and strings, is its JSON, so that a client
gets the value typed, as the board's own check raised it (``exc.value == 9``, not
``"9"``); a string's text is the string itself.

A tuple comes back as a list, and a value JSON cannot write exactly (NaN, infinity, an
object, a text longer than :data:`JSON_LIMIT`) travels as text only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["JSON_LIMIT", "VALUE_JSON_KEY", "value_from", "value_json"]

VALUE_JSON_KEY = "value_json"
"""ErrorInfo metadata key of the value's JSON."""

JSON_LIMIT = 512
"""Longest JSON text sent, characters: an error echoes a value, it does not carry data."""


class _NotPlain(Exception):
    """A value, or a part of one, that JSON does not carry as it is."""


def value_json(value: Any) -> str | None:
    """``value`` as JSON text when it is plain data other than text, and short; None
    otherwise (a string's ``value`` text is the string itself: nothing to add)."""
    if isinstance(value, str):
        return None
    try:
        text = json.dumps(_plain(value), allow_nan=False, ensure_ascii=False)
    except (_NotPlain, ValueError):
        return None
    return text if len(text) <= JSON_LIMIT else None


def value_from(metadata: Mapping[str, str]) -> Any:
    """The value an ErrorInfo's ``metadata`` carries: typed from ``value_json`` when it is
    there and reads as JSON, else the ``value`` text (a server before it, or a value that
    travels as text only)."""
    text = metadata.get(VALUE_JSON_KEY)
    if text is not None:
        try:
            return json.loads(text)
        except ValueError:
            pass
    return metadata["value"]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):  # a numpy scalar: its Python number
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise _NotPlain
