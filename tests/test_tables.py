"""Listings keep a line per row on a narrow terminal by leaving columns out, in order."""

from __future__ import annotations

from sidra.cli.tables import CELL_PADDING, TABLE_EDGES, WRAPPED_WIDTH, columns_that_fit

ROWS = [{"id": "5f0feb30be9ae943", "kind": "spsa", "when": "2026-12-05 15:06", "note": "x" * 60}]
COLUMNS = ("id", "kind", "when", "note")


def _width(*columns: str) -> int:
    return sum(max(len(c), len(ROWS[0][c])) + CELL_PADDING for c in columns) + TABLE_EDGES


def test_a_wide_terminal_keeps_every_column() -> None:
    assert columns_that_fit(ROWS, COLUMNS, ("when", "kind"), 200) == list(COLUMNS)


def test_columns_leave_in_the_order_given_and_only_those_named() -> None:
    without_when = _width("id", "kind", "note")
    assert columns_that_fit(ROWS, COLUMNS, ("when", "kind"), without_when) == ["id", "kind", "note"]
    assert columns_that_fit(ROWS, COLUMNS, ("when", "kind"), without_when - 1) == ["id", "note"]
    assert columns_that_fit(ROWS, COLUMNS, ("when", "kind"), 10) == ["id", "note"]


def test_a_wrapped_column_counts_a_few_words_not_its_whole_text() -> None:
    wrapped = _width("id", "kind", "when") + WRAPPED_WIDTH + CELL_PADDING
    assert columns_that_fit(ROWS, COLUMNS, ("when",), wrapped, ["note"]) == list(COLUMNS)
    assert columns_that_fit(ROWS, COLUMNS, ("when",), wrapped) == ["id", "kind", "note"]


def test_no_rows_measures_the_headers() -> None:
    assert columns_that_fit([], COLUMNS, ("when",), 200) == list(COLUMNS)
