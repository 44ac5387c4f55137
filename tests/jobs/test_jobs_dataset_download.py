"""Data set files read back from the server (ReadDataset), every principal's listed for an
admin, and the quota's refusals counted: a record that names the file it trained on by
its SHA-256 evaluates on another machine. Real server, store, board and command line."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import grpc
import pytest

from sidra.client import FailedPrecondition, connect
from sidra.client.aio import connect as aio_connect
from sidra.client.errors import from_rpc_error
from sidra.client.jobs import JOB_SERVICE
from sidra.drivers import (
    DatasetNotKept,
    InvalidArgument,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
)
from sidra.hil.v1 import jobs_pb2 as pb
from sidra.server.observability import ServiceMetrics
from sidra.server.security.roles import Role
from sidra.server.security.tokens import TokensFile
from sidra.server.settings import LimitsSettings
from tests.cli_support import run_sidra, unwrapped
from tests.jobs.jobs_support import serving
from tests.jobs.test_jobs_dataset_file import iris_csv
from tests.jobs.test_jobs_dataset_upload import large_npz
from tests.server.security_support import principals

MIB = 2**20


def _read(address: str, request: pb.ReadDatasetRequest, token: str = "") -> pb.ReadDatasetResponse:
    """ReadDataset as any client may ask it, past this client's checks."""
    with connect(address, token=token or None) as client:
        method = client.jobs.channel.unary_unary(
            f"/{JOB_SERVICE}/ReadDataset",
            request_serializer=pb.ReadDatasetRequest.SerializeToString,
            response_deserializer=pb.ReadDatasetResponse.FromString,
        )
        try:
            reply: pb.ReadDatasetResponse = method(request, timeout=30.0)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return reply


def _left_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_kept_file_is_read_back_in_pieces_as_it_was_sent(tmp_path: Path) -> None:
    """A 1.3 MB file on a server answering 1 MiB at most comes back in pieces of 960 KiB,
    byte for byte, with its progress told; the async client reads it as the sync one."""
    sent = large_npz(tmp_path)
    content = sent.read_bytes()
    out = tmp_path / "back"
    out.mkdir()
    told: list[tuple[int, int]] = []
    with serving(tmp_path / "s.sqlite3", max_message_bytes=MIB) as address:
        with connect(address) as client:
            kept = client.jobs.upload_dataset(sent)
            path = client.jobs.download_dataset(
                kept.sha256, out / "copy.npz", on_progress=lambda *a: told.append(a)
            )
        piece = MIB - 64 * 1024  # the message limit less the answer's headroom
        assert told == [(piece, len(content)), (len(content), len(content))]
        assert path == out / "copy.npz" and path.read_bytes() == content
        assert _left_in(out) == ["copy.npz"]  # no partial file left

        async def read_back() -> Path:
            async with await aio_connect(address) as aio:
                return await aio.jobs.download_dataset(kept.sha256, out / "async.npz")

        assert asyncio.run(read_back()).read_bytes() == content
        first = _read(address, pb.ReadDatasetRequest(sha256=kept.sha256, max_bytes=1000))
        assert (first.content, first.size_bytes, first.name) == (
            content[:1000], len(content), "large.npz",
        )  # fmt: skip
        end = _read(address, pb.ReadDatasetRequest(sha256=kept.sha256, offset=len(content)))
        assert (end.content, end.size_bytes) == (b"", len(content))


@pytest.mark.parametrize(
    ("request_fields", "error", "field", "says"),
    [
        ({"sha256": "ab" * 32}, DatasetNotKept, "sha256", "no data set file of SHA-256 ab"),
        ({"sha256": "xyz"}, InvalidArgument, "sha256", "a SHA-256 as 64 hex digits"),
        ({"offset": 10**9}, OutOfRange, "offset", "0 .. 4012 (the size of lab.csv)"),
        ({"offset": 2**64 - 1}, OutOfRange, "offset", "0 .. 4012 (the size of lab.csv)"),
        ({"max_bytes": 5 * MIB}, OutOfRange, "max_bytes", "0 .. 4194304 (0: 1048576)"),
    ],
    ids=["unknown", "not-hex", "offset", "offset-past-sqlite", "max-bytes"],
)
def test_a_refused_read_names_its_field(
    request_fields: dict[str, object], error: type[Exception], field: str, says: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    sent = iris_csv(tmp_path, "lab.csv")
    assert sent.stat().st_size == 4012
    with serving(tmp_path / "s.sqlite3") as address:
        with connect(address) as client:
            kept = client.jobs.upload_dataset(sent)
        request = pb.ReadDatasetRequest(**{"sha256": kept.sha256, **request_fields})  # type: ignore[arg-type]
        with pytest.raises(error) as refused:
            _read(address, request)
        assert getattr(refused.value, "field", field) == field
        assert says in str(refused.value)


def test_a_download_that_fails_leaves_the_path_as_it_was(tmp_path: Path) -> None:
    """A file deleted before it is read, and a store whose bytes no longer match their
    SHA-256: the file at the path stays as it was and no partial file is left."""
    sent = iris_csv(tmp_path, "lab.csv")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "lab.csv"
    target.write_text("mine\n")
    store = tmp_path / "s.sqlite3"
    with serving(store) as address, connect(address) as client:
        kept = client.jobs.upload_dataset(sent)
        with sqlite3.connect(store) as db:  # one byte changed under the server
            db.execute("UPDATE dataset_blobs SET content = CAST(? AS BLOB)",
                       (b"2" + sent.read_bytes()[1:],))  # fmt: skip
        with pytest.raises(FailedPrecondition, match=f"not {kept.sha256} it is kept under"):
            client.jobs.download_dataset(kept.sha256, target)
        assert target.read_text() == "mine\n" and _left_in(out) == ["lab.csv"]
        client.jobs.delete_dataset(kept.sha256)
        with pytest.raises(DatasetNotKept, match="sha256: no data set file of SHA-256"):
            client.jobs.download_dataset(kept.sha256, target)
        assert target.read_text() == "mine\n" and _left_in(out) == ["lab.csv"]


def test_every_principal_s_files_are_listed_and_read_by_an_admin_only(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = principals(
        tokens_file, viewer=Role.VIEWER, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER,
        admin=Role.ADMIN,
    )  # fmt: skip
    shared = iris_csv(tmp_path, "lab.csv")
    own = large_npz(tmp_path)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        with connect(address, token=token["alice"]) as alice:
            kept = alice.jobs.upload_dataset(shared)
            alice.jobs.upload_dataset(own)
        with connect(address, token=token["bob"]) as bob:
            bob.jobs.upload_dataset(shared)  # the same bytes, kept once
            with pytest.raises(PermissionDenied, match="every_principal: 'bob' may not list"):
                bob.jobs.datasets(every_principal=True)
            with pytest.raises(PermissionDenied, match="an admin's right"):
                bob.jobs.download_dataset(kept.sha256, tmp_path / "x.csv", "alice")
        with (
            connect(address, token=token["viewer"]) as viewer,
            pytest.raises(DatasetNotKept, match="kept for principal 'viewer'"),
        ):
            viewer.jobs.download_dataset(kept.sha256, tmp_path / "x.csv")
        with connect(address, token=token["admin"]) as admin:
            files = admin.jobs.datasets(every_principal=True)
            assert sorted((f.principal, f.name) for f in files) == [
                ("alice", "lab.csv"), ("alice", "large.npz"), ("bob", "lab.csv"),
            ]  # fmt: skip
            room = admin.jobs.dataset_room(every_principal=True)
            assert room.stored_bytes == shared.stat().st_size + own.stat().st_size
            both = admin.jobs.datasets(sha256=kept.sha256, every_principal=True)
            assert sorted(f.principal for f in both) == ["alice", "bob"]
            with pytest.raises(InvalidArgument, match="every_principal"):
                admin.jobs.datasets("alice", every_principal=True)
            copy = admin.jobs.download_dataset(kept.sha256, tmp_path / "copy.csv", "alice")
            assert copy.read_bytes() == shared.read_bytes()
    assert not (tmp_path / "x.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_uploads_past_the_quota_are_counted_as_limit_refusals(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    sent = large_npz(tmp_path)  # 1.3 MB

    def refusals() -> float | None:
        return metrics.registry.get_sample_value(
            "sidra_limit_refusals_total", {"limit": "max_dataset_mb"}
        )

    limits = LimitsSettings(max_dataset_mb=1)
    with serving(tmp_path / "s.sqlite3", limits=limits, metrics=metrics) as address:
        assert refusals() == 0.0  # the series is there before the first refusal
        with connect(address) as client:
            for _ in range(2):
                with pytest.raises(ResourceExhausted, match="limits.max_dataset_mb"):
                    client.jobs.upload_dataset(sent)
    assert refusals() == 2.0


def test_sidra_downloads_a_kept_file_and_model_eval_reads_it_back_from_the_server(
    tmp_path: Path,
) -> None:
    """A remote job trained on a file kept in the server; its record, moved to a machine
    without the file, evaluates with --server (the file read back beside the record, and
    found there the next time without it); `sidra jobs datasets download` writes it where
    asked and leaves a different file alone."""
    sent = large_npz(tmp_path)
    digest = hashlib.sha256(sent.read_bytes()).hexdigest()
    store = tmp_path / "s.sqlite3"
    with serving(store) as address:
        run = tmp_path / "run"
        cli = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                        str(sent), "--epochs", "1", "--hidden", "8", "--out", str(run),
                        "--json")  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        elsewhere = tmp_path / "elsewhere"
        shutil.copytree(run, elsewhere)  # the record alone: no large.npz beside it
        assert not (elsewhere / "large.npz").exists()

        offline = run_sidra("model", "eval", str(elsewhere))
        assert offline.returncode == 2
        assert unwrapped(
            "give its file (.npz or .csv), or --server when a server keeps it for you (a job's "
            f"file), to read it back from there (as sidra jobs datasets download {digest[:16]} "
            "does)"
        ) in unwrapped(offline.stderr)

        (elsewhere / "large.npz").mkdir()  # where the file would go: a folder there
        blocked = run_sidra("model", "eval", str(elsewhere), "--server", address)
        assert blocked.returncode == 2
        assert unwrapped(
            f"the server keeps the data set file the record names (large.npz), but {elsewhere} "
            "cannot take it (a file that can be written (Is a directory))"
        ) in unwrapped(blocked.stderr)
        (elsewhere / "large.npz").rmdir()
        assert sorted(p.name for p in elsewhere.iterdir() if p.name.startswith(".")) == []

        served = run_sidra("model", "eval", str(elsewhere), "--server", address, "--json")
        assert served.returncode == 0, served.stderr
        assert unwrapped(f"read the data set file large.npz (SHA-256 {digest[:16]}…) back from "
                         "the server into") in unwrapped(served.stderr)  # fmt: skip
        assert (elsewhere / "large.npz").read_bytes() == sent.read_bytes()
        assert json.loads(served.stdout)["samples"] == 780  # the test split (0.3) of 2,600
        again = run_sidra("model", "eval", str(elsewhere), "--json")  # found beside it now
        assert again.returncode == 0, again.stderr

        out = tmp_path / "dl"  # a folder, made as its trailing slash asks
        got = run_sidra("jobs", "datasets", "download", digest[:8], "--server", address,
                        "--out", f"{out}/")  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert (out / "large.npz").read_bytes() == sent.read_bytes()
        here = run_sidra("jobs", "datasets", "download", digest, "--server", address,
                         "--out", str(out / "large.npz"))  # fmt: skip
        assert here.returncode == 0 and "already here" in here.stdout
        other = out / "other.npz"
        other.write_bytes(b"not it")
        refused = run_sidra("jobs", "datasets", "download", digest, "--server", address,
                            "--out", str(other))  # fmt: skip
        assert refused.returncode == 2
        assert unwrapped("'--out': got") in unwrapped(refused.stderr)
        assert other.read_bytes() == b"not it"
        # Trained on again from a machine without the file: named as kept, or by its digest.
        for named in ("large.npz", f"sha256:{digest[:10]}"):
            rerun = tmp_path / f"run-{named.replace(':', '-')}"
            again = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                              named, "--epochs", "1", "--hidden", "8", "--out", str(rerun),
                              "--json")  # fmt: skip
            assert again.returncode == 0, again.stderr
            said = unwrapped(again.stderr)  # a console.log line: wrapped beside its source
            assert unwrapped("the job trains on the file") in said
            assert unwrapped(f"large.npz (SHA-256 {digest[:16]}") in said
        missing = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                            "missing.npz")  # fmt: skip
        assert missing.returncode == 2
        assert unwrapped("got missing.npz, which is no file here, nor does the server keep one "
                         "of that name for you") in unwrapped(missing.stderr)  # fmt: skip
        short = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                          f"sha256:{digest[:4]}")  # fmt: skip
        assert short.returncode == 2
        assert unwrapped(f"got sha256:{digest[:4]}: '{digest[:4]}': expected a SHA-256, or its "
                         "first 8 or more hex digits") in unwrapped(short.stderr)  # fmt: skip

        unknown = run_sidra("jobs", "datasets", "download", "0123456789", "--server", address)
        assert unknown.returncode == 2
        assert unwrapped("'0123456789': no kept file's SHA-256 starts so") in unwrapped(
            unknown.stderr
        )


def test_sidra_lists_every_principal_s_files_for_an_admin(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = principals(tokens_file, alice=Role.PROGRAMMER, admin=Role.ADMIN)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        with connect(address, token=token["alice"]) as alice:
            alice.jobs.upload_dataset(iris_csv(tmp_path, "lab.csv"))
        listed = run_sidra("jobs", "datasets", "list", "--every-principal", "--server", address,
                           env={"SIDRA_TOKEN": token["admin"]}, columns=200)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "alice" in listed.stdout and "lab.csv" in listed.stdout
        assert unwrapped("1 file of 1 principal, 4.0 kB in the store") in unwrapped(listed.stdout)
        assert unwrapped("each may keep 268.4 MB ([limits] max_dataset_mb = 256)") in unwrapped(
            listed.stdout
        )
        refused = run_sidra("jobs", "datasets", "list", "--every-principal", "--server", address,
                            env={"SIDRA_TOKEN": token["alice"]})  # fmt: skip
        assert refused.returncode == 1
        assert unwrapped("every_principal: 'alice' may not list") in unwrapped(refused.stderr)
