"""Interop: a Node.js client that knows the service only through board.proto.

``tests/interop/stranger_client.mjs`` loads nothing but
``proto/sidra/hil/v1/board.proto`` (with @grpc/proto-loader), calls every RPC
of ``sidra.hil.v1.BoardService`` on the ideal emulator served here over real
gRPC, and recomputes every expected number itself: float32 little-endian
row-major tensors, I = V·G and V·Gᵀ, the SplitMix64/Rademacher perturbation
matrix, and the error model. It prints one JSON object of checks and exits
non-zero if any failed.

Skipped when ``node``/``npm`` are not installed, or when the pinned npm
dependencies (tests/interop/package-lock.json) cannot be fetched because the
registry is unreachable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sidra.drivers import BoardDriver

INTEROP_DIR = Path(__file__).resolve().parent / "interop"
CLIENT = INTEROP_DIR / "stranger_client.mjs"
NODE_MODULES = INTEROP_DIR / "node_modules"
REQUIRED_PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader")

NPM_CI_TIMEOUT_S = 240
NODE_TIMEOUT_S = 120

# npm error codes / messages that mean "could not reach the registry",
# as opposed to a broken lockfile or package.
_NETWORK_ERRORS = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|ENETUNREACH|"
    r"EHOSTUNREACH|ERR_SOCKET_TIMEOUT|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT|"
    r"network|request to https?://\S+ failed|getaddrinfo|socket hang up|proxy",
    re.IGNORECASE,
)


def _deps_installed() -> bool:
    """True when a previous ``npm install``/``npm ci`` completed in tests/interop."""
    return (NODE_MODULES / ".package-lock.json").is_file() and all(
        (NODE_MODULES / name / "package.json").is_file() for name in REQUIRED_PACKAGES
    )


def _npm_error(output: str) -> str:
    """The first few ``npm error`` lines of ``output`` (all of it if there are none)."""
    lines = [ln for ln in output.splitlines() if ln.startswith("npm error") or "ERR!" in ln]
    return " | ".join(lines[:6]) if lines else _tail(output, 1500)


def _tail(text: str, limit: int = 4000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


@pytest.fixture(scope="module")
def node() -> str:
    """Path of ``node`` with the interop dependencies installed (or skip)."""
    node_exe, npm_exe = shutil.which("node"), shutil.which("npm")
    if node_exe is None or npm_exe is None:
        missing = " and ".join(n for n, p in (("node", node_exe), ("npm", npm_exe)) if p is None)
        pytest.skip(f"Node.js interop test needs {missing} on PATH (Node.js >= 18 with npm)")

    if not _deps_installed():
        env = dict(os.environ, npm_config_update_notifier="false")
        try:
            proc = subprocess.run(
                [npm_exe, "ci", "--no-audit", "--no-fund"],
                cwd=INTEROP_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
            err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else exc.stderr
            pytest.skip(
                f"npm ci timed out after {NPM_CI_TIMEOUT_S} s (npm registry unreachable?): "
                f"{_tail((out or '') + (err or ''), 1500)}"
            )
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            if _NETWORK_ERRORS.search(output):
                pytest.skip(f"npm ci could not reach the npm registry: {_npm_error(output)}")
            pytest.fail(
                f"npm ci failed in {INTEROP_DIR} (exit {proc.returncode}):\n{_tail(output)}"
            )
        if not _deps_installed():
            pytest.fail(f"npm ci succeeded but {REQUIRED_PACKAGES} are missing:\n{_tail(output)}")
    return node_exe


@pytest.mark.timeout(NPM_CI_TIMEOUT_S + NODE_TIMEOUT_S + 60)
def test_node_stranger_client_calls_every_rpc(node: str, served: tuple[BoardDriver, int]) -> None:
    driver, port = served
    assert driver.info.emulator_preset == "ideal"
    address = f"127.0.0.1:{port}"

    try:
        proc = subprocess.run(
            [node, str(CLIENT), address],
            cwd=INTEROP_DIR,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"node stranger_client.mjs {address} did not finish in {NODE_TIMEOUT_S} s\n"
            f"--- stdout ---\n{exc.stdout!r}\n--- stderr ---\n{exc.stderr!r}"
        )

    shown = f"--- node stdout ---\n{proc.stdout}\n--- node stderr ---\n{proc.stderr}"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"node client did not print one JSON object (exit {proc.returncode})\n{shown}")

    checks = report.get("checks", [])
    failed = [c["name"] for c in checks if not c.get("ok")]
    assert proc.returncode == 0, f"node client exited {proc.returncode}; failed {failed}\n{shown}"
    assert checks, f"node client reported no checks\n{shown}"
    assert not failed, f"failed checks: {failed}\n{shown}"
    assert report.get("ok") is True, shown

    # Every RPC of the service was exercised.
    names = {c["name"] for c in checks}
    for required in (
        "get_board_info",
        "program",
        "read_conductance_region",
        "mvm",
        "transpose_mvm",
        "perturb_apply_sign_minus",
        "perturb_restore",
        "error_tile_out_of_range",
    ):
        assert required in names, f"check {required!r} missing from the report\n{shown}"
