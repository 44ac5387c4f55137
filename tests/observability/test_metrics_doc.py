"""docs/operations.md's metric table agrees with what a server exposes, labels included,
and its alert rules use only metrics in that table."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from observability_support import served_with_metrics
from prometheus_client.parser import text_string_to_metric_families

from sidra.client import connect
from sidra.drivers import Region, open_board
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import serve_virtual_board
from sidra.server.state import StateStore

DOC = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
SECTION = DOC.split("## Metrics and alerts", 1)[1]
PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=1, rows=8, cols=8)})


def documented() -> dict[str, set[str]]:
    """Metric name -> its labels, from the table's rows."""
    rows = re.findall(r"^\| `(sidra_\w+)` \| [^|]+ \|([^|]*)\|", SECTION, re.M)
    return {name: {label.strip() for label in labels.split(",") if label.strip()}
            for name, labels in rows}  # fmt: skip


def exposed(store: Path) -> dict[str, set[str]]:
    """Metric name -> its labels, from a scrape of a served serial board after some calls
    (its state in ``store``, as ``sidra serve`` keeps it)."""
    with (
        serve_virtual_board(PROFILE, 1) as board_server,
        open_board(board_server.url) as driver,
        StateStore(store) as state,
        served_with_metrics(driver, store=state) as served,
        connect(f"127.0.0.1:{served.port}") as remote,
    ):
        remote.program(0, remote.read_conductance(0).conductances)
        remote.deployments.add("demo", b"PK\x03\x04 a model", [(0, Region(0, 0, 8, 8))])
        remote.deployments.check("demo", read_repeats=2)  # the checks' gauges have a sample
        with urllib.request.urlopen(f"http://127.0.0.1:{served.metrics_port}/metrics") as reply:
            text = reply.read().decode("utf-8")
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        name += "_info" if family.type == "info" else ""
        if name.endswith("_created"):
            continue  # prometheus-client's start time of each series, not a metric of ours
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        found[name] = labels
    return found


def test_the_metric_table_is_what_a_server_exposes(tmp_path: Path) -> None:
    table, served = documented(), exposed(tmp_path / "state.sqlite3")
    assert set(table) == set(served)
    for name, labels in served.items():
        assert table[name] == labels, name


def test_alert_rules_use_documented_metrics() -> None:
    rules = SECTION.split("Alert rules", 1)[1].split("### Logs", 1)[0]
    used = {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"sidra_\w+", rules)}
    assert used and used <= set(documented()), used - set(documented())
