"""Bearer tokens and roles: every RPC refused without a token, with a bad one and with
each role too low for it; the principal of each call; tokens stored only as hashes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from security_support import served, tokens_for_every_role

from sidra.client import InvalidArgument, PermissionDenied, Unauthenticated, connect
from sidra.client.aio import connect as aio_connect
from sidra.drivers.operations import OPERATIONS
from sidra.hil.v1 import session_pb2
from sidra.server.security import (
    RPC_ROLES,
    SESSION_ROLES,
    Role,
    add_principal,
    current_principal,
    hash_token,
    principal_name,
    principal_of,
    read_tokens,
    remove_principal,
    required_role,
)
from sidra.server.security.tokens import write_tokens
from sidra.server.servicer import SERVICE_NAME
from sidra.server.sessions import SESSION_SERVICE_NAME

AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
BOARD_RPCS = [op.rpc for op in OPERATIONS]
SESSION_RPCS = [m.name for m in session_pb2.DESCRIPTOR.services_by_name["SessionService"].methods]
RPCS = [f"/{SERVICE_NAME}/{rpc}" for rpc in BOARD_RPCS] + [
    f"/{SESSION_SERVICE_NAME}/{rpc}" for rpc in SESSION_RPCS
]
"""Every method of both services (full names): each is refused as its role says."""


def role_of(method: str) -> Role:
    role = required_role(method)
    assert role is not None, method
    return role


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth") / "tokens.toml"


@pytest.fixture(scope="module")
def tokens(tokens_file: Path) -> dict[Role, str]:
    return tokens_for_every_role(tokens_file)


@pytest.fixture(scope="module")
def channel(tokens_file: Path, tokens: dict[Role, str]) -> Iterator[grpc.Channel]:
    with served(tokens_file=tokens_file) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


def call(channel: grpc.Channel, rpc: str, token: str | None) -> grpc.StatusCode:
    """Calls method ``rpc`` (full name) with an empty request and ``token``; the code it gets."""
    method = channel.unary_unary(rpc)
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    try:
        method(b"", timeout=10, metadata=metadata)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        if code in AUTH_CODES:  # the message names the RPC and the role it needs
            name = rpc.rpartition("/")[2]
            assert name in exc.details() and f"role {role_of(rpc).label}" in exc.details()
        return code
    return grpc.StatusCode.OK


def test_every_rpc_has_a_role() -> None:
    """The role tables are keyed by exactly the declared operations' RPC names and
    session.proto's."""
    assert set(RPC_ROLES) == set(BOARD_RPCS)
    assert set(SESSION_ROLES) == set(SESSION_RPCS)


def test_roles_follow_the_documented_ladder() -> None:
    assert RPC_ROLES["GetBoardInfo"] == Role.VIEWER
    assert {
        RPC_ROLES[r] for r in ("MVM", "TransposeMVM", "ReadConductance", "ReadWriteCounts")
    } == {Role.OPERATOR}
    assert {RPC_ROLES[r] for r in ("Program", "Perturb", "Calibrate")} == {Role.PROGRAMMER}
    assert RPC_ROLES["AdvanceClock"] == Role.PROGRAMMER  # and the whole board leased
    assert SESSION_ROLES["ListLeases"] == Role.VIEWER
    assert set(SESSION_ROLES.values()) - {Role.VIEWER} == {Role.OPERATOR}
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") == Role.VIEWER
    assert required_role("/some.Other/Service") == Role.ADMIN  # unknown: closed


@pytest.mark.parametrize("rpc", RPCS)
def test_rpc_without_a_token_is_unauthenticated(channel: grpc.Channel, rpc: str) -> None:
    assert call(channel, rpc, None) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("rpc", RPCS)
def test_rpc_with_a_bad_token_is_unauthenticated(channel: grpc.Channel, rpc: str) -> None:
    assert call(channel, rpc, "not-a-token-anyone-was-given") == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("rpc", RPCS)
def test_rpc_with_each_lower_role_is_permission_denied(
    channel: grpc.Channel, tokens: dict[Role, str], rpc: str
) -> None:
    lower = [role for role in Role if role < role_of(rpc)]
    for role in lower:
        assert call(channel, rpc, tokens[role]) == grpc.StatusCode.PERMISSION_DENIED, role


@pytest.mark.parametrize("rpc", RPCS)
def test_rpc_with_its_role_or_above_gets_through(
    channel: grpc.Channel, tokens: dict[Role, str], rpc: str
) -> None:
    """The role needed and every higher one pass the check (the empty request may still
    be refused by the board, as it would be without auth)."""
    for role in (role for role in Role if role >= role_of(rpc)):
        assert call(channel, rpc, tokens[role]) not in AUTH_CODES, role


@pytest.mark.parametrize(
    "header", ["Basic dmlld2VyOnB3", "Bearer", "Bearer   ", "token-without-scheme"]
)
def test_malformed_authorization_is_unauthenticated(
    channel: grpc.Channel, tokens: dict[Role, str], header: str
) -> None:
    method = channel.unary_unary(f"/{SERVICE_NAME}/GetBoardInfo")
    with pytest.raises(grpc.RpcError) as caught:
        method(b"", timeout=10, metadata=(("authorization", header),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def refusal_of(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(f"/{SERVICE_NAME}/GetBoardInfo")(b"", timeout=10, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return caught.value.details() or ""


def test_each_refusal_says_what_its_caller_can_do(channel: grpc.Channel) -> None:
    """A token sent but unknown (rotated, removed) is the admin's to mend: no metadata
    hint, which sent the caller looking at how it sends the token; no token, or a header
    not of the form 'Bearer <token>', gets the hint."""
    unknown = refusal_of(channel, (("authorization", "Bearer rotated-long-ago"),))
    assert unknown == (
        "GetBoardInfo needs a bearer token of role viewer or above; the call carries an "
        "unknown bearer token: it is not in the server's tokens file (rotated or removed?); "
        "ask the server's admin for a token (sidra token add NAME --role viewer)"
    )
    hint = " (send metadata 'authorization: Bearer <token>')"
    assert refusal_of(channel, ()).endswith("the call carries no bearer token" + hint)
    malformed = refusal_of(channel, (("authorization", "Basic dmlld2VyOnB3"),))
    assert malformed.endswith(
        "carries an 'authorization' header that is not 'Bearer <token>'" + hint
    )


def _refusal_info(channel: grpc.Channel, rpc: str, token: str | None) -> dict[str, str]:
    """The ErrorInfo metadata of ``rpc`` refused to ``token``, as a client reads it."""
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(f"/{SERVICE_NAME}/{rpc}")(b"", timeout=10, metadata=metadata)
    status = rpc_status.from_call(caught.value)
    assert status is not None, caught.value.code()
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info) and info.domain == "sidra.hil"
    assert info.reason == caught.value.code().name
    return dict(info.metadata)


def test_each_refusal_says_why_in_its_error_info(
    channel: grpc.Channel, tokens: dict[Role, str]
) -> None:
    """A client tells a missing, an unknown and a too-low token apart by the ErrorInfo's
    "refusal" (board.proto "Errors"), not by the message; a known caller is named."""
    assert _refusal_info(channel, "GetBoardInfo", None) == {
        "exception": "Unauthenticated", "refusal": "missing_token",
    }  # fmt: skip
    assert _refusal_info(channel, "GetBoardInfo", "rotated-long-ago") == {
        "exception": "Unauthenticated", "refusal": "unknown_token",
    }  # fmt: skip
    assert _refusal_info(channel, "Program", tokens[Role.VIEWER]) == {
        "exception": "PermissionDenied", "refusal": "insufficient_role",
        "principal": "viewer", "role": "viewer",
    }  # fmt: skip


def test_health_needs_no_token(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_needs_a_viewer_token(channel: grpc.Channel, tokens: dict[Role, str]) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    metadata = (("authorization", f"Bearer {tokens[Role.VIEWER]}"),)
    (reply,) = stub.ServerReflectionInfo(iter([request]), timeout=10, metadata=metadata)
    assert SERVICE_NAME in {s.name for s in reply.list_services_response.service}


def test_client_library_sends_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """connect(token=...) reaches a board that wants one; too low a role raises
    PermissionDenied, no token or an unknown one Unauthenticated."""
    tokens_file = tmp_path / "tokens.toml"
    operator = add_principal(tokens_file, "ops", Role.OPERATOR)
    monkeypatch.delenv("SIDRA_TOKEN", raising=False)
    with served(tokens_file=tokens_file) as port:
        with connect(f"127.0.0.1:{port}", token=operator) as b:
            v = np.zeros((1, b.info.rows), np.float32)
            assert b.mvm(0, v).currents.shape == (1, b.info.cols)
            with pytest.raises(PermissionDenied, match="Program needs role programmer") as low:
                b.program(0, np.full((2, 2), 5.0, np.float32))
            assert low.value.refusal == "insufficient_role"
        for token in (None, "not-a-token"):
            with (
                connect(f"127.0.0.1:{port}", token=token, wait_ready_s=None) as b,
                # (its first call asks the service's limits: GetBoardInfo is refused)
                pytest.raises(Unauthenticated, match="GetBoardInfo needs a bearer token"),
            ):
                b.mvm(0, v)


def test_client_library_reads_sidra_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens_file = tmp_path / "tokens.toml"
    monkeypatch.setenv("SIDRA_TOKEN", add_principal(tokens_file, "viewer1", Role.VIEWER))
    with served(tokens_file=tokens_file) as port, connect(f"127.0.0.1:{port}") as board:
        assert board.info.rows == 256


def test_client_refuses_a_token_in_clear_beyond_loopback() -> None:
    """A token never leaves the host unencrypted: no TLS, no connection."""
    with pytest.raises(InvalidArgument, match="TLS"):
        connect("192.0.2.1:50051", token="secret", wait_ready_s=None)


def test_tokens_file_holds_only_hashes(tokens_file: Path, tokens: dict[Role, str]) -> None:
    text = tokens_file.read_text(encoding="utf-8")
    for token in tokens.values():
        assert token not in text
        assert hash_token(token) in text
    assert tokens_file.stat().st_mode & 0o077 == 0  # owner only


def test_tokens_file_changes_apply_without_restart(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    first = add_principal(tokens_file, "first", Role.VIEWER)
    with served(tokens_file=tokens_file) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        late = add_principal(tokens_file, "late", Role.VIEWER)
        assert call(ch, f"/{SERVICE_NAME}/GetBoardInfo", late) == grpc.StatusCode.OK
        remove_principal(tokens_file, "late")
        assert call(ch, f"/{SERVICE_NAME}/GetBoardInfo", late) == grpc.StatusCode.UNAUTHENTICATED
        assert call(ch, f"/{SERVICE_NAME}/GetBoardInfo", first) == grpc.StatusCode.OK
        tokens_file.write_text("not toml [", encoding="utf-8")  # broken: nobody gets in
        assert call(ch, f"/{SERVICE_NAME}/GetBoardInfo", first) == grpc.StatusCode.UNAUTHENTICATED
        # ... and is told it is the server's file, not the caller's token, at fault.
        with pytest.raises(grpc.RpcError) as refused:
            ch.unary_unary(f"/{SERVICE_NAME}/GetBoardInfo")(
                b"", metadata=[("authorization", f"Bearer {first}")], timeout=5
            )
        said = refused.value.details() or ""
        assert "the server cannot check now: its tokens file is unusable" in said
        assert "ask the server's admin" in said and "unknown bearer token" not in said


def test_refusals_are_logged_with_where_the_call_came_from(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens_file = tmp_path / "tokens.toml"
    add_principal(tokens_file, "first", Role.VIEWER)
    with served(tokens_file=tokens_file) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert call(ch, f"/{SERVICE_NAME}/GetBoardInfo", "guessed") == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert refused and "carries an unknown bearer token (from ipv4:127.0.0.1:" in refused[0]
    assert "guessed" not in caplog.text  # the token itself never reaches the log


def test_an_expired_token_is_refused_naming_its_principal_and_when(tmp_path: Path) -> None:
    """A token past its expires_utc is UNAUTHENTICATED with a message naming whose it is,
    since when, and how to get a new one; expiry written into the file takes effect at the
    next call, as any change does; a token not yet expired works."""
    tokens_file = tmp_path / "tokens.toml"
    token = add_principal(tokens_file, "student", Role.VIEWER, valid_for=timedelta(days=90))
    info = f"/{SERVICE_NAME}/GetBoardInfo"
    with served(tokens_file=tokens_file) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert call(ch, info, token) == grpc.StatusCode.OK
        entries = read_tokens(tokens_file)
        lapsed = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
        entries["student"] = replace(entries["student"], expires_utc=lapsed)
        write_tokens(tokens_file, entries)
        with pytest.raises(grpc.RpcError) as refused:
            ch.unary_unary(info)(b"", timeout=10, metadata=(("authorization", f"Bearer {token}"),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == (
            "GetBoardInfo: the bearer token of principal 'student' expired at "
            "2026-01-02 03:04 UTC; "
            "ask the server's admin for a new one (sidra token add student --replace)"
        )
        with (
            connect(f"127.0.0.1:{port}", token=token) as client,
            pytest.raises(Unauthenticated, match="expired at 2026-01-02") as expired,
        ):
            client.info  # noqa: B018 (the property makes the call)
        assert expired.value.refusal == "expired_token"  # to act on: fetch a new token


def _whoami_handler() -> grpc.GenericRpcHandler:
    """A method that answers with the name of the principal calling it."""

    def name(_request: bytes, context: grpc.ServicerContext) -> bytes:
        assert principal_of(context) == current_principal()
        return principal_name(context).encode()

    method = grpc.unary_unary_rpc_method_handler(name)
    return grpc.method_handlers_generic_handler("test.Whoami", {"Name": method})


@pytest.mark.parametrize("role", list(Role))
def test_handlers_see_the_authenticated_principal(tmp_path: Path, role: Role) -> None:
    """current_principal() inside a handler names whoever made the call; an unknown
    service needs admin, so lower roles are refused before the handler runs."""
    tokens = tokens_for_every_role(tmp_path / "tokens.toml")
    with (
        served(tokens_file=tmp_path / "tokens.toml", extra=(_whoami_handler(),)) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        whoami = ch.unary_unary("/test.Whoami/Name")
        metadata = (("authorization", f"Bearer {tokens[role]}"),)
        if role < Role.ADMIN:
            with pytest.raises(grpc.RpcError) as caught:
                whoami(b"", timeout=10, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        else:
            assert whoami(b"", timeout=10, metadata=metadata) == b"admin"


def test_without_auth_every_call_is_local() -> None:
    with (
        served(extra=(_whoami_handler(),)) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        assert ch.unary_unary("/test.Whoami/Name")(b"", timeout=10) == b"local"


def test_current_principal_outside_a_call_refuses_to_guess() -> None:
    with pytest.raises(LookupError, match="outside an RPC"):
        current_principal()


def _targets_and_inputs(board: Any) -> tuple[np.ndarray, np.ndarray]:
    """A whole tile of distinct targets (µS) and a batch of two inputs (V)."""
    g = np.linspace(1.0, 40.0, board.info.rows * board.info.cols, dtype=np.float32)
    g = g.reshape(board.info.rows, board.info.cols)
    v = np.full((2, board.info.rows), 0.1, np.float32)
    return g, v


def test_the_token_goes_with_every_call_shape(tmp_path: Path) -> None:
    """Unary, server streaming, client streaming and bidirectional calls all carry the
    token, from the sync and the asyncio client alike (a channel sends the shapes its
    interceptor does not declare bare, and the server refuses them UNAUTHENTICATED)."""
    tokens_file = tmp_path / "tokens.toml"
    token = add_principal(tokens_file, "prog", Role.PROGRAMMER)
    banded = 64 * 1024  # the server's message size as the client believes it: tiles go in bands
    with served(tokens_file=tokens_file) as port:
        with connect(f"127.0.0.1:{port}", token=token, server_max_message_bytes=banded) as board:
            g, v = _targets_and_inputs(board)
            board.program(1, g)  # ProgramChunked: client streaming
            read = board.read_conductance(1)  # ReadConductanceChunked: server streaming
            np.testing.assert_array_equal(read.conductances, g)
            unary = board.mvm(1, v).currents
            (streamed,) = list(board.mvm_stream(1, [v]))  # MVMStream: bidirectional
            np.testing.assert_array_equal(streamed.currents, unary)

        async def run() -> None:
            async with await aio_connect(
                f"127.0.0.1:{port}", token=token, server_max_message_bytes=banded
            ) as board:
                await board.program(2, g)
                np.testing.assert_array_equal((await board.read_conductance(2)).conductances, g)
                unary = (await board.mvm(2, v)).currents
                streamed = [result async for result in board.mvm_stream(2, [v])]
                np.testing.assert_array_equal(streamed[0].currents, unary)

        asyncio.run(run())
