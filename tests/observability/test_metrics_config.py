"""``[metrics]`` and ``[logging]`` in the configuration, and ``sidra serve`` serving metrics.

Refused values name their key; a metrics port that cannot be bound stops
``sidra serve`` at start, naming ``metrics.listen``; a running ``sidra serve``
answers a scrape on the port it printed and logs its RPC lines as JSON.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from cli_support import SIDRA, serving_line
from observability_support import board_rpc, sample, scrape

from sidra.client import connect
from sidra.server.observability import MetricsEndpoint, ServiceMetrics
from sidra.server.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"metrics": {"listen": "9464"}}, "metrics.listen: '9464' is not host:port"),
        ({"metrics": {"listen": "127.0.0.1:99999"}}, "metrics.listen: '127.0.0.1:99999' is not"),
        (
            {"listen": "127.0.0.1:50051", "metrics": {"listen": "127.0.0.1:50051"}},
            "metrics.listen: '127.0.0.1:50051' takes port 50051, the gRPC port",
        ),
        (
            {"metrics": {"port": 9464}},
            "metrics.port: unknown key (allowed: listen, deployment_check_every_s, "
            "deployment_check_read_repeats)",
        ),
        (
            {"metrics": {"deployment_check_every_s": -1}},
            "metrics.deployment_check_every_s: input should be greater than or equal to 0; got -1",
        ),
        ({"logging": {"format": "xml"}}, "logging.format: input should be 'text' or 'json'"),
        ({"logging": {"level": "loud"}}, "logging.level: input should be 'debug', 'info'"),
    ],
)
def test_refused_values_name_their_key(section: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(**section)
    assert any(line.startswith(problem) for line in refused.value.problems), refused.value


def test_metrics_and_logging_defaults() -> None:
    settings = load_settings()
    assert settings.metrics.listen is None  # no endpoint unless asked for
    assert (settings.logging.format, settings.logging.level) == ("text", "info")
    ports_of_their_own = load_settings(listen="127.0.0.1:0", metrics={"listen": "127.0.0.1:0"})
    assert ports_of_their_own.metrics.listen == "127.0.0.1:0"


def test_a_port_in_use_is_refused_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(OSError, match=rf"^metrics\.listen: cannot bind '{address}'"):
            MetricsEndpoint.start(ServiceMetrics().registry, address)
        result = subprocess.run(
            [*SIDRA, "serve", "--listen", "127.0.0.1:0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={
                **os.environ,
                "SIDRA_METRICS__LISTEN": address,
                "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3"),  # not the user's
            },
        )
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert "metrics.listen: cannot bind" in said and "Traceback" not in result.stderr
    assert "another process listens there" in said
    # Refused before the store was opened: no store, lock or serving file left behind.
    assert sorted(os.listdir(tmp_path)) == []


def test_sidra_serve_serves_metrics_and_logs_json() -> None:
    env = {
        **os.environ,
        "SIDRA_METRICS__LISTEN": "127.0.0.1:0",
        "SIDRA_LOGGING__FORMAT": "json",
    }
    proc = subprocess.Popen(
        [*SIDRA, "serve", "--board", "emu://?preset=ideal&seed=4", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = serving_line(proc.stderr)
        match = re.search(
            r"on 127\.0\.0\.1:(\d+) \[.*\], state store \S+, "
            r"metrics on http://127\.0\.0\.1:(\d+)/metrics$",
            line.strip(),
        )
        assert match, line
        port, metrics_port = int(match.group(1)), int(match.group(2))
        with connect(f"127.0.0.1:{port}", token="") as board:
            board.advance_clock(2.0)
        samples = scrape(metrics_port)
        described = {"model": "SIDRA-IDEAL", "serial": "EMU-IDEAL-4"}
        assert [key for key, value in samples.items() if key[0] == "sidra_board_info"
                and described.items() <= dict(key[1]).items() and value == 1]  # fmt: skip
        assert samples[board_rpc("AdvanceClock", "OK")] == 1
        assert samples[sample("sidra_board_operations_total", operation="AdvanceClock")] == 1
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.wait()
    lines = [json.loads(text) for text in rest.splitlines() if text.startswith("{")]
    clock = [entry for entry in lines if entry.get("method", "").endswith("/AdvanceClock")]
    assert len(clock) == 1 and clock[0]["code"] == "OK" and clock[0]["principal"] == "local"
