"""Generates the committed protobuf and gRPC Python code beside the .proto files.

Run ``make proto`` (or ``python proto/generate.py``) after editing a .proto.
``--check`` regenerates into a temporary folder and exits 1 if the committed
files differ, which the test suite runs so stale generated code cannot land.

The generator is pinned: generated code embeds the protobuf and grpcio
versions it needs at run time, so regenerating with another grpcio-tools
would silently change the project's minimum runtime versions.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

GRPCIO_TOOLS_PIN = "1.85.1"
PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = sorted(PROTO_ROOT.glob("sidra/**/*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Runs protoc on every .proto into ``out_dir``; returns the files written."""
    installed = version("grpcio-tools")
    if installed != GRPCIO_TOOLS_PIN:
        raise SystemExit(
            f"grpcio-tools {installed} is installed; generated code is pinned to "
            f"{GRPCIO_TOOLS_PIN} (pip install grpcio-tools=={GRPCIO_TOOLS_PIN})"
        )
    from grpc_tools import protoc  # imported late: only needed to regenerate

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [
        out_dir / p.relative_to(PROTO_ROOT).with_name(p.stem + suffix)
        for p in PROTO_FILES
        for suffix in SUFFIXES
    ]


def stale_files() -> list[str]:
    """Names the committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for path in fresh:
            committed = PROTO_ROOT / path.relative_to(tmp)
            if not committed.exists() or not filecmp.cmp(path, committed, shallow=False):
                stale.append(str(committed.relative_to(PROTO_ROOT.parent)))
        return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    options = parser.parse_args()
    if options.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {name} (run make proto)", file=sys.stderr)
        return 1 if stale else 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            target = PROTO_ROOT / path.relative_to(tmp)
            shutil.copyfile(path, target)
            print(f"wrote {target.relative_to(PROTO_ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
