"""CSV samples as tools write them (sidra.training.csv_tables): any table of finite
numbers reads back exactly, whichever way a spreadsheet separates and punctuates it, and
any text that is not a table of numbers is a ValueError naming where, never a crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidra.training.csv_tables import read_labelled_csv, read_samples_csv

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
tables = st.integers(1, 6).flatmap(
    lambda width: st.lists(st.lists(finite, min_size=width, max_size=width), min_size=1,
                           max_size=8)
)  # fmt: skip


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables, style=st.sampled_from(["comma", "semicolon", "tab"]), header=st.booleans())
def test_any_table_of_numbers_reads_back_exactly(
    table: list[list[float]], style: str, header: bool, tmp_path: Path
) -> None:
    separator, point = {"comma": (",", "."), "semicolon": (";", ","), "tab": ("\t", ",")}[style]
    lines = [separator.join(f"c{i}" for i in range(len(table[0])))] if header else []
    lines += [separator.join(repr(v).replace(".", point) for v in row) for row in table]
    path = tmp_path / "x.csv"
    path.write_text("\r\n".join(lines))
    if style != "comma" and len(table[0]) == 1:
        return  # one column: no ';' or tab says a comma is a decimal one: read as two
    np.testing.assert_array_equal(read_samples_csv(path), np.array(table, np.float64))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_text_is_read_or_refused_naming_the_file(text: str, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for read in (read_samples_csv, read_labelled_csv):
        try:
            read(path)
        except ValueError as exc:
            assert str(path) in str(exc)


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="cannot be read as text"):
        read_samples_csv(path)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.text(alphabet="0123456789.,;\t -xe\r", max_size=12), max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_a_file_s_bytes_sent_elsewhere_read_as_the_file_does(
    lines: list[str], newline: str, tmp_path: Path
) -> None:
    """A file a client sends (its content, read under its name alone) gives what the file
    read here gives, whatever its line ends: the same arrays or the same refusal."""
    path = tmp_path / "sent.csv"
    path.write_bytes(newline.join(lines).encode())

    def outcome(read: Callable[[], tuple[np.ndarray, np.ndarray]]) -> object:
        try:
            x, y = read()
        except ValueError as exc:
            return str(exc).replace(str(path), "sent.csv")
        return x.tolist(), y.tolist()

    here = outcome(lambda: read_labelled_csv(path))
    sent = outcome(lambda: read_labelled_csv(Path("sent.csv"), path.read_bytes()))
    assert sent == here
