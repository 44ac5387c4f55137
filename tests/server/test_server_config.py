"""``sidra serve`` settings: TOML file, SIDRA_* variables and options, in that order of
strength; every refusal names its key; the network needs TLS and tokens."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from cli_support import SIDRA, run_sidra
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from security_support import Pki, make_pki, served

from sidra.drivers import open_board
from sidra.server import create_server
from sidra.server.security import Role, add_principal
from sidra.server.settings import ConfigError, ServerSettings, default_state_path, load_settings


@pytest.fixture(autouse=True)
def no_sidra_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings tests see only the variables they set."""
    for name in list(os.environ):
        if name.startswith("SIDRA_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems(config: Path | None = None, **options: object) -> str:
    """The ConfigError text that loading these settings raises."""
    with pytest.raises(ConfigError) as caught:
        load_settings(config, **options)
    return str(caught.value)


def full_config(folder: Path, pki: Pki) -> Path:
    tokens = folder / "tokens.toml"
    add_principal(tokens, "alice", Role.ADMIN)
    return write(
        folder / "sidra.toml",
        f"""
listen = "0.0.0.0:50443"
board = "emu://?preset=ideal&seed=3"
max_message_mb = 32
workers = 4
reflection = false
job_stop_wait_s = 75
allow_insecure = false

[tls]
cert = "{pki.server_cert}"
key = "{pki.server_key}"
client_ca = "{pki.ca}"

[auth]
tokens_file = "{tokens}"

[limits]
max_message_mb = 16
max_batch = 512
max_in_flight = 2

[state]
path = "{folder / "state.sqlite3"}"

[metrics]
listen = "127.0.0.1:9464"
""",
    )


def test_every_key_loads_from_toml(tmp_path: Path, pki: Pki) -> None:
    settings = load_settings(full_config(tmp_path, pki))
    assert (settings.listen, settings.board) == ("0.0.0.0:50443", "emu://?preset=ideal&seed=3")
    assert (settings.max_message_mb, settings.workers, settings.reflection) == (32, 4, False)
    assert settings.job_stop_wait_s == 75
    assert settings.tls is not None and settings.tls.client_ca == pki.ca
    assert settings.auth is not None and settings.auth.tokens_file == tmp_path / "tokens.toml"
    assert (settings.limits.max_message_mb, settings.limits.max_batch) == (16, 512)
    assert settings.limits.max_in_flight == 2
    assert settings.state.path == tmp_path / "state.sqlite3"
    assert settings.metrics.listen == "127.0.0.1:9464"


def test_defaults_serve_loopback_openly() -> None:
    settings = load_settings()
    assert settings.listen == "127.0.0.1:50051" and settings.tls is None and settings.auth is None
    assert settings.reflection and not settings.allow_insecure
    assert settings.job_stop_wait_s == 30
    assert settings.state.job_retention_days is None  # jobs kept until deleted
    assert settings.state.path == default_state_path()
    assert default_state_path().name == "state.sqlite3"
    assert settings.metrics.listen is None


def test_environment_beats_file_and_options_beat_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "s.toml", 'workers = 2\nboard = "emu://?seed=1"\n[limits]\nmax_batch = 8\n'
    )
    monkeypatch.setenv("SIDRA_WORKERS", "3")
    monkeypatch.setenv("SIDRA_LIMITS__MAX_BATCH", "16")
    settings = load_settings(config)
    assert (settings.workers, settings.board, settings.limits.max_batch) == (3, "emu://?seed=1", 16)
    assert load_settings(config, workers=5, board=None).workers == 5


def test_config_file_can_be_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIDRA_CONFIG", str(write(tmp_path / "s.toml", "workers = 7\n")))
    assert ServerSettings().workers == 7


def test_nested_environment_keys_reach_sections(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDRA_TLS__CERT", str(pki.server_cert))
    monkeypatch.setenv("SIDRA_TLS__KEY", str(pki.server_key))
    settings = load_settings()
    assert settings.tls is not None and settings.tls.key == pki.server_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[tls]\ncert = "/x.pem"\nkey = "/y.pem"\n', "tls.cert: file not found '/x.pem'"),
        ("workers = 0\n", "workers: input should be greater than or equal to 1; got 0"),
        ('workers = "many"\n', "workers: input should be a valid integer"),
        ("wrokers = 2\n", "wrokers: unknown key (allowed: board, listen,"),
        (
            "[limits]\nmax_inflight = 2\n",
            "limits.max_inflight: unknown key (allowed: max_message_mb,",
        ),
        ('listen = "nowhere"\n', "listen: 'nowhere' is not host:port"),
        ('listen = "127.0.0.1:\u00b2"\n', "listen: '127.0.0.1:\u00b2' is not host:port"),
        ('[metrics]\nlisten = "9464"\n', "metrics.listen: '9464' is not host:port"),
        ('[auth]\ntokens_file = "/no/tokens.toml"\n', "auth.tokens_file: file not found"),
        ("[auth]\n", "auth.tokens_file: required, not given"),
        ("max_message_mb = 8\n[limits]\nmax_message_mb = 9\n", "limits.max_message_mb: 9 is above"),
        ("workers = 4\n[limits]\nmax_streams = 4\n", "limits.max_streams: 4 is not below workers"),
        ("workers = \n", "is not valid TOML"),
        ("job_stop_wait_s = -1\n", "job_stop_wait_s: input should be greater than or equal to 0"),
        (
            "[state]\njob_retention_days = 0\n",
            "state.job_retention_days: input should be greater than 0",
        ),
        ('config = "/other.toml"\n', "config: name the file with --config or SIDRA_CONFIG"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(write(tmp_path / "s.toml", text))


def test_tls_files_are_checked_at_start(tmp_path: Path, pki: Pki) -> None:
    not_pem = write(tmp_path / "cert.pem", "hello")
    message = problems(tls={"cert": not_pem, "key": pki.server_key})
    assert f"tls.cert: '{not_pem}' holds no PEM certificate" in message
    message = problems(tls={"cert": pki.server_cert, "key": pki.client_key})
    assert f"tls.key: '{pki.client_key}' is not the private key of '{pki.server_cert}'" in message


def test_tokens_file_is_checked_at_start(tmp_path: Path) -> None:
    bad = write(tmp_path / "t.toml", '[principals.bob]\nrole = "boss"\ntoken_sha256 = "00"\n')
    assert "auth.tokens_file:" in problems(auth={"tokens_file": bad})
    assert "token_sha256" in problems(auth={"tokens_file": bad})
    empty = write(tmp_path / "empty.toml", "")
    assert "holds no principals" in problems(auth={"tokens_file": empty})


def test_missing_config_file_is_named() -> None:
    assert "config: file not found '/no/sidra.toml'" in problems(Path("/no/sidra.toml"))


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "192.0.2.7:1", "lab-pc:50051"])
def test_network_address_without_tls_and_auth_is_refused(listen: str) -> None:
    message = problems(listen=listen)
    assert f"listen: {listen!r} is reachable from the network" in message
    assert "[tls] and [auth]" in message and "allow_insecure" in message


def test_network_address_with_tls_but_no_auth_is_refused(pki: Pki) -> None:
    tls = {"cert": pki.server_cert, "key": pki.server_key}
    assert "needs [auth]" in problems(listen="0.0.0.0:1", tls=tls)


def test_network_address_with_tls_and_auth_is_allowed(tmp_path: Path, pki: Pki) -> None:
    tokens = tmp_path / "tokens.toml"
    add_principal(tokens, "alice", Role.VIEWER)
    tls = {"cert": pki.server_cert, "key": pki.server_key}
    settings = load_settings(listen="0.0.0.0:1", tls=tls, auth={"tokens_file": tokens})
    assert settings.listen == "0.0.0.0:1"


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.3.2.1:0", "[::1]:0", "localhost:0"])
def test_loopback_needs_neither_tls_nor_auth(listen: str) -> None:
    assert load_settings(listen=listen).listen == listen


def test_allow_insecure_lets_the_network_in() -> None:
    assert load_settings(listen="0.0.0.0:0", allow_insecure=True).allow_insecure


def test_reflection_can_be_turned_off() -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with served(reflection=False) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# The command line: what a lab engineer sees.


def test_serve_reports_bad_configuration_without_a_traceback(tmp_path: Path) -> None:
    config = write(tmp_path / "s.toml", '[tls]\ncert = "/x.pem"\nkey = "/y.pem"\nworkers = 0\n')
    result = run_sidra("serve", "--config", str(config), timeout=60)
    assert result.returncode == 2
    assert "sidra serve: invalid configuration" in result.stderr
    assert "tls.cert: file not found '/x.pem'" in result.stderr
    assert "tls.workers: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_the_network_without_protection() -> None:
    result = run_sidra("serve", "--listen", "0.0.0.0:0", timeout=60)
    assert result.returncode == 2
    assert "listen: '0.0.0.0:0' is reachable from the network" in result.stderr
    assert "Traceback" not in result.stderr


@contextmanager
def sidra_serve(*args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """``sidra serve ARGS`` running with ``env`` added, its state store in a temporary
    folder (these tests clear every SIDRA_ variable, the run's store path too: the
    user's own store must not be touched); stopped with SIGTERM."""
    with tempfile.TemporaryDirectory() as state:
        store = {"SIDRA_STATE__PATH": str(Path(state) / "state.sqlite3")}
        with _serving_process(args, {**os.environ, **store, **env}) as proc:
            yield proc


@contextmanager
def _serving_process(args: tuple[str, ...], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*SIDRA, "serve", *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def read_until_serving(proc: subprocess.Popen[str]) -> tuple[list[str], int]:
    """The lines ``sidra serve`` printed up to its "serving ..." line, and its port."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        match = re.match(r"serving .* on \S+:(\d+) \[", line)
        if match:
            return lines, int(match.group(1))
    raise AssertionError("".join(lines))


def test_allow_insecure_serves_and_warns() -> None:
    with sidra_serve("--listen", "0.0.0.0:0", SIDRA_ALLOW_INSECURE="true") as proc:
        lines, port = read_until_serving(proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            grpc.channel_ready_future(ch).result(timeout=10)
    text = "".join(lines)
    assert "WARNING" in text and "serving without TLS on 0.0.0.0:0" in text
    assert "serving without [auth] on 0.0.0.0:0" in text
    assert "[plaintext, no auth], state store " in lines[-1]
    # Where the deployments and jobs are kept: this run's own store, as sidra_serve set it.
    assert lines[-1].rstrip().endswith("/state.sqlite3"), lines[-1]
    # Just before it, when, which process and which code (the serving line has no time).
    assert re.match(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO \S+: sidra serve started: pid "
        rf"{proc.pid}, SIDRA HIL \S+",
        lines[-2],
    ), lines[-2]


def test_json_logs_carry_the_start_line_as_an_object_naming_the_port() -> None:
    """With ``[logging] format = "json"`` a collector reads every line ``sidra serve``
    writes, the start line too (its port and board as fields), even at level warning."""
    env = {"SIDRA_LOGGING__FORMAT": "json", "SIDRA_LOGGING__LEVEL": "warning"}
    with sidra_serve("--listen", "127.0.0.1:0", "--restore", **env) as proc:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(json.loads(line))  # every line, or this fails naming it
            if "port" in lines[-1]:
                break
        start = lines[-1]
        with grpc.insecure_channel(f"127.0.0.1:{start['port']}") as ch:
            grpc.channel_ready_future(ch).result(timeout=10)
    assert start["message"].startswith("serving ") and start["listen"].startswith("127.0.0.1:")
    assert start["protection"] == "plaintext, no auth" and start["board"].startswith("emu://")
    assert start["serial_number"] in start["message"] and start["metrics_url"] is None
    assert start["pid"] == proc.pid and start["sidra_hil"]  # which process, which code
    assert start["state_path"].endswith("state.sqlite3") and start["state_path"] in start["message"]
    restored = [line for line in lines if line["message"].startswith("restore ")]
    assert len(restored) == 1 and restored[0]["level"] == "INFO"


def test_serve_with_tls_and_tokens_from_a_config_file(tmp_path: Path, pki: Pki) -> None:
    """``sidra serve --config`` with mutual TLS and tokens, reached by ``sidra board probe``
    through a grpcs:// URL and SIDRA_TOKEN: a lab's deployment end to end."""
    tokens = tmp_path / "tokens.toml"
    token = add_principal(tokens, "prober", Role.VIEWER)
    config = write(
        tmp_path / "sidra.toml",
        f"""listen = "127.0.0.1:0"
board = "emu://?preset=ideal&seed=5"
[tls]
cert = "{pki.server_cert}"
key = "{pki.server_key}"
client_ca = "{pki.ca}"
[auth]
tokens_file = "{tokens}"
""",
    )
    with sidra_serve("--config", str(config)) as proc:
        lines, port = read_until_serving(proc)
        assert "[mutual TLS, tokens" in lines[-1]
        url = f"grpcs://127.0.0.1:{port}?ca={pki.ca}&cert={pki.client_cert}&key={pki.client_key}"
        probe = probe_with_token(url, token)
        assert probe.returncode == 0, probe.stderr
        assert '"serial_number": "EMU-IDEAL-5"' in probe.stdout
        refused = probe_with_token(url, "wrong")
        assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr


def probe_with_token(url: str, token: str) -> subprocess.CompletedProcess[str]:
    """``sidra board probe URL --json`` with SIDRA_TOKEN set."""
    return subprocess.run(
        [*SIDRA, "board", "probe", url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SIDRA_TOKEN": token},
    )


def test_a_port_another_server_listens_on_stops_the_start(tmp_path: Path) -> None:
    """gRPC binds with SO_REUSEPORT unless told not to: a second server on a port in use
    would start and take every other connection to another board. It must not start,
    and say why."""
    with served(reflection=False) as port, open_board("emu://?preset=ideal") as board:
        with pytest.raises(OSError) as refused:
            create_server(board, f"127.0.0.1:{port}")
        assert str(refused.value) == (
            f"listen: cannot bind '127.0.0.1:{port}': Address already in use (another "
            "process listens there: a sidra serve already running?)"
        )
        result = subprocess.run(
            [*SIDRA, "serve", "--board", "emu://", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3")},
        )  # fmt: skip
    assert result.returncode == 2
    assert "Address already in use" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    # Refused before the board was opened: gRPC logged no bind error, the state store
    # recorded no board (it used to, and the next start warned of an instance change).
    assert "add_port" not in result.stderr and "E1" not in result.stderr
    assert not (tmp_path / "state.sqlite3").exists() and os.listdir(tmp_path) == []


def test_a_state_path_from_home_is_the_users_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """``path = "~/lab/state.sqlite3"`` made a folder named "~" where sidra serve ran."""
    monkeypatch.delenv("SIDRA_STATE__PATH", raising=False)
    settings = load_settings(None, state={"path": "~/lab/state.sqlite3"})
    assert settings.state.path == Path.home() / "lab" / "state.sqlite3"
